"""`forkdiff series`: the chosen suites on the tree, then on the tree + patch 1, + patch 2, ...
(ktest's patchcheck), naming the first patch whose step's verdict differs from the step before.

Each step is one kernel (orchestrator/conduct/step.py), built like any PATCHES= kernel: a copy of
the tree with the first n patches applied, compiled through the shared ccache, cached by
content (a series run again builds nothing). The step folders, series.json and series.md go
into --out. Exit 0 when every step passes, 1 when a step fails or a patch changes a verdict, 2
on an error of forkdiff (bad arguments, no tree, a series that cannot be read)."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path

from ..cli_env import insn_profile_knob
from ..conduct.step import INCONCLUSIVE, PASS, run_step
from ..errors import ForkdiffError
from ..prepare.gitbase import tree_at_base
from ..prepare.series import expand
from ..results.outdir import new_results_dir
from ..run.suites import SUITES, load_scenarios
from .vmtest import _list


def first_change(steps: list[dict]) -> int | None:
    """Index (1-based patch number) of the first step whose verdicts differ from the step
    before, skipping inconclusive steps (compared with the last conclusive one)."""
    prev = None
    for i, s in enumerate(steps):
        if s["verdict"] == INCONCLUSIVE:
            continue
        sig = (s["verdict"], tuple(sorted(s.get("per_suite", {}).items())))
        if prev is not None and sig != prev:
            return i
        prev = sig
    return None


def say(msg: str) -> None:
    print(f"[series] {msg}", file=sys.stderr, flush=True)


def _markdown(steps: list[dict], culprit: int | None, source: str) -> str:
    lines = [f"# forkdiff series: {source}", ""]
    if culprit is None:
        lines.append("No patch changes a verdict.")
    else:
        lines.append(f"**First patch that changes a verdict: patch {culprit}, "
                     f"{steps[culprit]['subject']}** ({steps[culprit - 1]['verdict']} -> "
                     f"{steps[culprit]['verdict']}: {steps[culprit]['detail']})")
    lines += ["", "| step | patch | verdict | per suite | build s | run s | detail |",
              "|---|---|---|---|---|---|---|"]
    for i, s in enumerate(steps):
        per = ", ".join(f"{k} {v}" for k, v in s["per_suite"].items())
        lines.append(f"| {i} | {s['subject']} | {s['verdict']} | {per} | "
                     f"{s['seconds'].get('build', '')} | {s['seconds'].get('run', '')} | "
                     f"{s['detail'].replace('|', '/')} |")
    return "\n".join(lines) + "\n"


def _run(args: argparse.Namespace) -> int:
    env = os.environ
    raw = args.patches or env.get("PATCHES") or ""
    if not raw.strip():
        raise ForkdiffError("forkdiff series needs a series", "give --patches (PATCHES=) an mbox, "
                            "a folder of git format-patch output, or patch files in order")
    series = expand([Path(p) for p in shlex.split(raw)])
    suites = _list(args.suites or env.get("SUITES") or "faults", SUITES, "SUITES")
    scenarios = tuple((args.scenarios or env.get("SCENARIOS") or "").replace(",", " ").split())
    if scenarios:
        load_scenarios(scenarios)  # an unknown scenario is an error now, not after a build
    out = Path(args.out or env.get("OUT") or new_results_dir())
    out.mkdir(parents=True, exist_ok=True)
    tree = tree_at_base(args.tree or env.get("KERNEL_TREE") or None, series.base_commit, raw, say)
    say(f"{len(series.patches)} patches; suites {', '.join(suites)}; scenarios "
        f"{', '.join(scenarios) or 'default'}; steps into {out}")
    steps: list[dict] = []
    t0 = time.monotonic()
    for n in range(len(series.patches) + 1):
        subject = "(the tree)" if n == 0 else series.subjects[n - 1]
        say(f"step {n}/{len(series.patches)}: {subject}")
        outcome = run_step(out / f"step-{n:02d}", tree, series.patches[:n], suites, scenarios, say,
                           insn_profile=insn_profile_knob())
        steps.append({"step": n, "subject": subject,
                      "patch": str(series.patches[n - 1]) if n else "", **outcome.as_dict()})
        say(f"step {n}: {outcome.verdict} (build {outcome.seconds.get('build')} s, run "
            f"{outcome.seconds.get('run', 0)} s){': ' + outcome.detail if outcome.detail else ''}")
        culprit = first_change(steps)
        summary = {"source": series.source, "base_commit": series.base_commit,
                   "suites": list(suites), "scenarios": list(scenarios), "steps": steps,
                   "first_change": culprit,
                   "first_change_subject": steps[culprit]["subject"] if culprit else None,
                   "wall_s": round(time.monotonic() - t0, 1)}
        (out / "series.json").write_text(json.dumps(summary, indent=1))  # kept if a later step stops
    (out / "series.md").write_text(_markdown(steps, culprit, series.source))
    print(_markdown(steps, culprit, series.source))
    if culprit is not None:
        print(f"first patch that changes a verdict: patch {culprit}: {steps[culprit]['subject']}")
    return 1 if culprit is not None or any(s["verdict"] != PASS for s in steps) else 0


def register(sub) -> None:
    p = sub.add_parser("series", help="run suites after each patch of a series (ktest patchcheck "
                                      "style) and name the first patch that changes a verdict")
    p.add_argument("--patches", help="the series (PATCHES=): an mbox (git format-patch --stdout, "
                                     "b4 am's .mbx), a folder of git format-patch output, or patch "
                                     "files in order")
    p.add_argument("--tree", help="kernel tree (KERNEL_TREE=; default Debian's linux-source-6.12); "
                                  "on a git checkout the series' base-commit is used")
    p.add_argument("--suites", help="suites per step (SUITES=; default: faults)")
    p.add_argument("--scenarios", "--scenario", dest="scenarios",
                   help="scenarios per step (SCENARIOS=; default: each suite's own)")
    p.add_argument("--out", help="results folder (OUT=; default results/<timestamp>)")
    p.set_defaults(func=_run)
