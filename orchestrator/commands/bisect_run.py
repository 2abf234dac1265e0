"""`forkdiff bisect-run`: a predicate for `git bisect run`.

    git bisect start BAD GOOD
    git bisect run python3 -m orchestrator bisect-run --suites faults --scenario anon-touched-21

Each call judges the kernel tree as it is now (git bisect's checkout, the current folder unless
--tree/KERNEL_TREE says otherwise): it syncs the tree into a persistent copy in the cache, builds
it incrementally there (orchestrator/prepare/mirror.py), runs the suites on that one kernel
(orchestrator/conduct/step.py) and exits with what git bisect reads:

    0    good: every comparison matches
    1    bad: a mismatch or a crash (a leak kmemleak saw, an oops)
    125  skip: the kernel does not build, the run is inconclusive (a job error, a hang, no
         comparison), the commit is not a tree forkdiff can use, or forkdiff itself failed
         unexpectedly: never a verdict it does not have
    128  abort the bisection: the arguments are wrong (an unknown suite or scenario, a results
         folder inside the tree), the build tools are missing or the tree is configured in place
         (.config): what no other commit changes

The tree is only read. Results go to --out (default: bisect/<tree key>/runs/ in the cache), one
folder per step named after the commit, and bisect.jsonl there has one line per step with its
timings."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

from ..cli_env import insn_profile_knob
from ..conduct.step import BUILD_FAILED, FAIL, INCONCLUSIVE, PASS, run_step
from ..errors import ForkdiffError
from ..prepare.kernel import check_build_tools
from ..prepare.mirror import Mirror, check_outside
from ..run.suites import SUITES, load_scenarios

GOOD, BAD, SKIP, ABORT = 0, 1, 125, 128
EXIT = {PASS: GOOD, FAIL: BAD, BUILD_FAILED: SKIP, INCONCLUSIVE: SKIP}


def exit_code(verdict: str) -> int:
    """git bisect run's exit code for a step verdict; anything unknown is a skip, never good/bad."""
    return EXIT.get(verdict, SKIP)


def say(msg: str) -> None:
    print(f"[bisect-run] {msg}", file=sys.stderr, flush=True)


def _setup(args: argparse.Namespace) -> tuple[Path, tuple[str, ...], tuple[str, ...]]:
    """Arguments checked before anything is built: a ForkdiffError here aborts the bisection."""
    from .vmtest import _list

    suites = _list(args.suites or os.environ.get("SUITES") or "faults", SUITES, "SUITES")
    scenarios = tuple((args.scenarios or os.environ.get("SCENARIOS") or "").replace(",", " ").split())
    if scenarios:
        load_scenarios(scenarios)
    check_build_tools()
    tree = Path(args.tree or os.environ.get("KERNEL_TREE") or os.getcwd()).expanduser().resolve()
    if args.out:
        check_outside(Path(args.out), tree)
    if (tree / ".config").exists() or (tree / "include/config").exists():
        # every commit git checks out keeps it: skipping each would end the bisection on nothing
        raise ForkdiffError(f"kernel tree {tree} has been configured in place (.config present)",
                            "run 'make mrproper' in it (forkdiff builds out of tree, in its cache), "
                            "then git bisect run again")
    return tree, suites, scenarios


def judge_tree(args: argparse.Namespace, tree: Path, suites, scenarios) -> tuple[str, dict]:
    """Sync, build, run, judge the tree as it is now: (verdict, the step's record)."""
    mirror = Mirror(tree)  # a commit that is not a kernel tree: ForkdiffError -> skip
    t0 = time.monotonic()
    with mirror.lock():
        kt, synced = mirror.refresh()
        commit = kt.identity.split(":")[1][:12] if kt.identity.startswith("git:") else "tree"
        root = Path(args.out) if args.out else mirror.root / "runs"
        out = root / f"{datetime.now(UTC).strftime('%Y%m%d-%H%M%S')}-{commit}"
        check_outside(out, tree)
        say(f"{tree} at {kt.identity}: synced into {mirror.src} ({synced['copied']} files copied, "
            f"{synced['removed']} removed, {synced['seconds']} s)")
        outcome = run_step(out, kt, (), suites, scenarios, say,
                           builder=lambda v, p: mirror.build(kt, v, p), insn_profile=insn_profile_knob())
    record = {"tree": str(tree), "identity": kt.identity, "suites": list(suites),
              "scenarios": list(scenarios), "sync": synced, **outcome.as_dict(),
              "wall_s": round(time.monotonic() - t0, 1)}
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "bisect.jsonl", "a") as fh:
        fh.write(json.dumps(record) + "\n")
    return outcome.verdict, record


def _run(args: argparse.Namespace) -> int:
    try:
        tree, suites, scenarios = _setup(args)
    except ForkdiffError as err:
        print(err.one_line(), file=sys.stderr)
        say(f"exit {ABORT}: aborting the bisection (the same error would meet every commit)")
        return ABORT
    os.environ.pop("PATCHES", None)  # a bisection judges the commit as it is, nothing added
    try:
        verdict, rec = judge_tree(args, tree, suites, scenarios)
    except ForkdiffError as err:
        print(err.one_line(), file=sys.stderr)
        say(f"exit {SKIP} (skip): this commit cannot be judged")
        return SKIP
    except KeyboardInterrupt:
        say(f"interrupted: exit {ABORT} aborts the bisection")
        return ABORT
    except Exception:
        traceback.print_exc()
        say(f"exit {SKIP} (skip): forkdiff failed unexpectedly, which is no verdict on the commit")
        return SKIP
    code = exit_code(verdict)
    s = rec["seconds"]
    say(f"{rec['identity']}: {verdict} -> exit {code} (sync {rec['sync']['seconds']} s, build "
        f"{s.get('build')} s, run {s.get('run', 0)} s, step {rec['wall_s']} s)"
        f"{': ' + rec['detail'] if rec['detail'] else ''}; results {rec['out']}")
    return code


def _abort_on_usage_error(parser: argparse.ArgumentParser) -> None:
    """A usage error must abort `git bisect run` (exit 128), not read as 'bad' (argparse's 2)."""
    def error(message: str) -> None:
        err = ForkdiffError(f"{parser.prog}: {message}", f"see '{parser.prog} --help'")
        print(err.one_line(), file=sys.stderr)
        sys.exit(ABORT)

    parser.error = error  # type: ignore[method-assign]


def register(sub) -> None:
    p = sub.add_parser("bisect-run", help="a predicate for `git bisect run`: exit 0 good, 1 bad, "
                                          "125 skip (no build, inconclusive)")
    p.add_argument("--tree", help="the kernel tree git bisect checks out (KERNEL_TREE=; default: "
                                  "the current folder)")
    p.add_argument("--suites", help="suites per step (SUITES=; default: faults)")
    p.add_argument("--scenarios", "--scenario", dest="scenarios",
                   help="scenarios per step, keep it short (SCENARIOS=; e.g. anon-touched-21)")
    p.add_argument("--out", help="results folder for the steps (default: in the cache); never "
                                 "inside the tree")
    _abort_on_usage_error(p)
    p.set_defaults(func=_run, usage_exit=ABORT)
