"""One step of a series or a bisection: one kernel (the tree as it is, or the tree + the first
patches of a series), the chosen suites on it, and one verdict for the step.

Verdicts (judge()):
  pass          every comparison of every suite matches (or is info/skipped), at least one match
  fail          a suite has a mismatch or a crashed row (a kernel-vs-model difference, a leak
                kmemleak saw, a kernel oops): the kernel is bad
  inconclusive  no mismatch and no crash, but a job error, a hang (under a loaded host a slow
                TCG guest can look hung), no comparison at all, or the run stopped with an error
  build-failed  the kernel did not compile, or the step's patches did not apply
                (errors.KernelDoesNotBuild); any other error on the way to a kernel (a copy
                that failed, the host) is inconclusive
"""

from __future__ import annotations

import json
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ForkdiffError, KernelDoesNotBuild
from ..prepare import variants as variants_mod
from ..prepare.kernel import build_kernel
from ..prepare.source import TreeSource, resolve_source
from ..prepare.tree import KernelTree
from ..results.folder import VERDICTS_JSONL
from ..run.suites import DEFAULT_PROFILE

BAD = ("mismatch", "crashed")
UNSURE = ("error", "hung")
PASS, FAIL, INCONCLUSIVE, BUILD_FAILED = "pass", "fail", "inconclusive", "build-failed"


@dataclass
class StepOutcome:
    verdict: str
    suites: dict[str, str] = field(default_factory=dict)  # suite -> pass/fail/inconclusive
    detail: str = ""  # the first bad row, or why the step is inconclusive / did not build
    out: Path | None = None
    seconds: dict[str, float] = field(default_factory=dict)  # build, run

    def as_dict(self) -> dict:
        return {"verdict": self.verdict, "per_suite": self.suites, "detail": self.detail,
                "out": str(self.out) if self.out else "", "seconds": self.seconds}


def judge(rows: Sequence[dict], suites: Sequence[str], run_errors: bool = False) -> StepOutcome:
    """The step's verdict from its verdict rows (verdicts.jsonl) for the chosen suites. A suite
    with a mismatch or crashed row fails; one without any match, or with error/hung rows, is
    inconclusive; run_errors (jobs that failed without a row) make a passing step inconclusive."""
    per: dict[str, str] = {}
    detail = ""
    for suite in suites:
        mine = [r for r in rows if r.get("suite") == suite]
        bad = [r for r in mine if r.get("verdict") in BAD]
        if bad:
            per[suite] = FAIL
            r = bad[0]
            detail = detail or (f"{suite}/{r.get('scenario')} {r.get('measurement')} "
                                f"{r.get('key')}: {r.get('verdict')}, observed {r.get('observed')} "
                                f"predicted {r.get('predicted')}").strip()
        elif any(r.get("verdict") in UNSURE for r in mine) or not any(
                r.get("verdict") == "match" for r in mine):
            per[suite] = INCONCLUSIVE
        else:
            per[suite] = PASS
    if FAIL in per.values():
        verdict = FAIL
    elif INCONCLUSIVE in per.values() or not per or run_errors:
        verdict = INCONCLUSIVE
        detail = detail or ("jobs failed without a verdict row" if run_errors and
                            INCONCLUSIVE not in per.values() else
                            "suites without a verdict: " + ", ".join(
                                s for s, v in per.items() if v == INCONCLUSIVE))
    else:
        verdict = PASS
    return StepOutcome(verdict, per, detail)


def tree_variant(tree: str | Path | KernelTree | TreeSource | None, patches: Sequence[Path]) -> str:
    """The variant whose kernel is the tree as it is (no patches) or the tree + patches
    (orchestrator/prepare/variants.py): `patched` on 6.8 and later, `baseline` for a pre-series
    tree (6.1) without patches."""
    source = resolve_source(tree)
    kt = source.tree
    plan = variants_mod.plan(source.model, lambda: source.baseline_cause, tuple(patches))
    want = variants_mod.TREE_PATCHES if patches else variants_mod.TREE
    for v in plan.variants:
        if plan.made_of[v] == want:
            return v
    raise ForkdiffError(f"tree {kt.path}: no kernel variant is {want}", "report this as a forkdiff bug")


def run_step(out: Path, tree, patches: Sequence[Path], suites: Sequence[str],
             scenarios: Sequence[str], say: Callable[[str], None],
             builder: Callable[[str, str], object] | None = None,
             insn_profile: bool = False) -> StepOutcome:
    """Build the step's kernel (through `builder(variant, profile)` when given, e.g. the
    incremental bisect build, else build_kernel), run the suites on it into `out`, judge.
    insn_profile: INSN_PROFILE=, read by the command."""
    from ..conductor import VmTestOptions, run

    tree = resolve_source(tree)  # once for the step: its build and its run use this one
    variant = tree_variant(tree, patches)
    profiles = sorted({DEFAULT_PROFILE[s] for s in suites})
    t0 = time.monotonic()
    try:
        for profile in profiles:
            if builder is not None:
                builder(variant, profile)
            else:
                build_kernel(variant, profile, tree=tree, patches=patches)
    except ForkdiffError as err:  # only a compile error or a patch that does not apply is the
        # source's fault; anything else (a copy, the configure step, the host) says nothing of it
        verdict = BUILD_FAILED if isinstance(err, KernelDoesNotBuild) else INCONCLUSIVE
        return StepOutcome(verdict, detail=err.one_line(), out=out,
                           seconds={"build": round(time.monotonic() - t0, 1)})
    built = round(time.monotonic() - t0, 1)
    t1 = time.monotonic()
    out.mkdir(parents=True, exist_ok=True)
    opts = VmTestOptions(out=out, suites=tuple(suites), tree=tree, patches=tuple(patches),
                         scenarios=tuple(scenarios), variants=(variant,),
                         insn_profile=insn_profile)
    rc, stopped = 1, ""
    try:
        rc = run(opts)
    except ForkdiffError as err:
        stopped = err.one_line()
    except Exception:  # a bug or a lost guest: never a verdict, only "inconclusive"
        stopped = "forkdiff stopped: " + traceback.format_exc(limit=3).strip().splitlines()[-1]
        say(traceback.format_exc())
    seconds = {"build": built, "run": round(time.monotonic() - t1, 1)}
    vfile = out / VERDICTS_JSONL
    rows = [json.loads(x) for x in vfile.read_text().splitlines() if x.strip()] if vfile.is_file() else []
    outcome = judge(rows, suites, run_errors=rc != 0 or bool(stopped))
    if stopped and outcome.verdict != FAIL:
        outcome.verdict, outcome.detail = INCONCLUSIVE, stopped
    outcome.out, outcome.seconds = out, seconds
    return outcome
