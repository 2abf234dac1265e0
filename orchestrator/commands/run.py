"""`forkdiff run --suite S`: run a suite on the kernel variants, append observations.jsonl."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from ..cli_env import insn_profile_knob, patches_knob, tree_knob
from ..errors import ForkdiffError
from ..prepare.source import resolve_source
from ..results.outdir import new_results_dir, writable_folder
from ..run.faultsetup import FaultOptions, parse_faults
from ..run.suites import SPAWN_VMAS, VARIANTS, RunOptions, load_scenarios, run_suite
from ..suite_defs import NAMES as SUITES


def _int_list(text: str) -> tuple[int, ...]:
    try:
        vals = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of integers: {text!r}") from None
    if not vals or any(v < 1 for v in vals):
        raise argparse.ArgumentTypeError(f"VMA counts must be positive integers: {text!r}")
    return vals


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run a suite (maps, faults, counts, spawn) on the kernel variants")
    p.add_argument("--suite", required=True, action="append", choices=SUITES,
                   help="suite to run (repeatable)")
    p.add_argument("--variant", choices=VARIANTS, action="append",
                   help="variant (repeatable; default: baseline and patched)")
    p.add_argument("--profile", choices=("faults", "perf", "debug"),
                   help="kernel profile (default: faults; perf: spawn on kernels without the debug "
                        "machinery; debug: the faults kernel + DEBUG_VM)")
    p.add_argument("--out", type=Path, help="results folder (default: results/<timestamp>)")
    p.add_argument("--scenario", action="append",
                   help="scenario name in scenarios/ or a YAML/JSON path (repeatable; maps/faults/counts; spawn: forked as it is, besides --vmas)")
    p.add_argument("--vmas", type=_int_list, default=SPAWN_VMAS,
                   help="spawn: comma-separated total VMA counts (default: the seed's 11 counts)")
    p.add_argument("--duration", type=float, default=10.0,
                   help="spawn: guest seconds per measurement (default 10)")
    p.add_argument("--repeats", type=int,
                   help="spawn: runs per VMA count (default 1); counts: forks per scenario (default 15)")
    p.add_argument("--no-calibrate", action="store_true",
                   help="spawn: skip the calibration layouts (only the VMA counts and --scenario layouts)")
    p.add_argument("--max-k", type=int, default=20000, help="faults: bound of the fail-nth sweep")
    p.add_argument("--count-only-above", type=int, default=1000,
                   help="faults: scenarios with more layout VMAs only count the checks (no sweep)")
    p.add_argument("--no-stack-filter", action="store_true",
                   help="faults: count every check in fork, not only those under dup_mmap "
                        "(exploratory: compare reports the sweep as not modelled)")
    p.add_argument("--page-faults", action="store_true",
                   help="faults: count the child's page-table allocations too (fail_page_alloc "
                        "under copy_page_range; the same as --faults slab,page)")
    p.add_argument("--faults", default=None,
                   help="faults: what fail-nth counts: slab (default), page, or slab,page")
    p.add_argument("--kmemleak", action="store_true",
                   help="faults: boot with kmemleak=on, count fork's own slab caches only, and scan "
                        "for leaks after every sweep")
    p.add_argument("--no-icount", action="store_true",
                   help="real time instead of deterministic virtual time (QEMU -icount); by default "
                        "maps/faults/counts use KVM when it works and -icount otherwise, spawn -icount")
    p.add_argument("--resume", action="store_true",
                   help="skip measurements already in <out>/observations.jsonl")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    if args.duration <= 0:
        raise ForkdiffError("--duration must be > 0", "e.g. --duration 10")
    if args.repeats is not None and args.repeats < 1:
        raise ForkdiffError("--repeats must be >= 1", "e.g. --repeats 5")
    if args.resume and args.out is None:
        raise ForkdiffError("--resume needs --out DIR (the folder of the run to resume)",
                            "give --out results/<timestamp>")
    if args.kmemleak and "faults" not in args.suite:
        raise ForkdiffError("--kmemleak applies to the faults suite", "add --suite faults")
    slab, page = parse_faults(args.faults or ("slab,page" if args.page_faults else "slab"))
    scenarios = load_scenarios(args.scenario) if args.scenario else None
    out = writable_folder(args.out) if args.out else new_results_dir()
    tree = resolve_source(tree_knob(None))  # KERNEL_TREE=, resolved once for every suite
    patches = tuple(patches_knob())  # PATCHES=
    total_errors = 0
    for suite in dict.fromkeys(args.suite):
        opts = RunOptions(suite=suite, out=out, variants=tuple(args.variant or VARIANTS),
                          profile=args.profile, scenarios=scenarios, vmas=args.vmas,
                          duration=args.duration, repeats=args.repeats, max_k=args.max_k,
                          count_only_above=args.count_only_above, resume=args.resume,
                          icount=False if args.no_icount else None, kmemleak=args.kmemleak,
                          calibrate=not args.no_calibrate, tree=tree, patches=patches,
                          insn_profile=insn_profile_knob(),
                          fault=FaultOptions(stack_filter=not args.no_stack_filter,
                                             page_alloc=page or args.page_faults, slab=slab))
        t0 = time.monotonic()
        res = run_suite(opts)
        print(f"{suite}: {res.records} records, {res.skipped_jobs} jobs skipped, "
              f"{len(res.errors)} errors, {time.monotonic() - t0:.0f} s -> {out / 'observations.jsonl'}")
        for e in res.errors:
            print(f"  error: {e}")
        total_errors += len(res.errors)
    return 1 if total_errors else 0
