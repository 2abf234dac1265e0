"""`forkdiff simulate ...`: run the simulator without a kernel. `simulate fork` prints the
prediction records of one scenario and variant as JSON lines (docs/predictions.md)."""

from __future__ import annotations

import json
import sys

from ..errors import ForkdiffError


def register(sub) -> None:
    p = sub.add_parser("simulate", help="run the Python model of the kernel (no VM)")
    ssub = p.add_subparsers(dest="simulate_command", metavar="WHAT", required=True)
    f = ssub.add_parser("fork", help="predict what fork() does for a scenario (JSON lines)")
    f.add_argument("--scenario", required=True, help="scenario file (YAML or JSON)")
    f.add_argument("--variant", required=True, choices=("patched", "baseline"))
    f.add_argument("--program", default="mapsprobe",
                   choices=("mapsprobe", "faultsweep", "spawn", "forkcount"),
                   help="guest program whose pre-fork history is replayed (default mapsprobe)")
    f.add_argument("--total", type=int, default=None,
                   help="spawn/forkcount --total: fill the process up to this many VMAs")
    f.add_argument("--binary", default=None,
                   help="the static guest binary (its ELF headers place text/data/bss/brk); "
                        "default: a typical gcc 12/glibc 2.36 static binary")
    f.add_argument("--guest-path", default=None, help="path of the binary inside the guest")
    f.add_argument("--failslab-ignore-gfp-wait", choices=("Y", "N"), default="N")
    f.add_argument("--page-ignore-gfp-wait", choices=("Y", "N"), default="Y")
    f.add_argument("--page-min-order", type=int, default=1)
    f.add_argument("--no-stack-filter", action="store_true",
                   help="fail-nth without the dup_mmap stack filter (outcomes not modelled)")
    f.add_argument("--no-per-vma-lock", action="store_true", help="CONFIG_PER_VMA_LOCK=n")
    f.add_argument("--measurement", action="append", default=None,
                   help="only these measurements (repeatable)")
    f.set_defaults(func=_fork)
    t = ssub.add_parser("tree", help="replay a maple tree operation list, print the dumps (JSON lines)")
    t.add_argument("--ops", required=True, help="operation list (format: simulator/maple/ops.py)")
    t.add_argument("--oracle", action="store_true",
                   help="replay it on the kernel's lib/maple_tree.c instead (built in the cache)")
    t.add_argument("--tree", help="kernel tree for --oracle (default: $KERNEL_TREE, else linux-source-6.12)")
    t.set_defaults(func=_tree)


def _tree(args) -> int:
    from .maple_tree_cmd import run_tree

    return run_tree(args)


def _fork(args) -> int:
    from simulator import predict
    from simulator.exec_image import DEFAULT_ELF, read_elf
    from simulator.fork import FaultSettings, KernelConfig
    from simulator.mm import MmError
    from simulator.scenario import ScenarioError, load

    try:
        sc = load(args.scenario)
    except ScenarioError as err:
        raise ForkdiffError(str(err), "fix the scenario file (format: simulator/scenario.py)") from None
    meas = tuple(args.measurement or predict.MEASUREMENTS)
    bad = [m for m in meas if m not in predict.MEASUREMENTS]
    if bad:
        raise ForkdiffError(f"unknown measurement(s) {', '.join(bad)}",
                            f"use some of {', '.join(predict.MEASUREMENTS)}")
    try:
        elf = read_elf(args.binary, args.guest_path) if args.binary else DEFAULT_ELF
    except OSError as err:
        raise ForkdiffError(f"cannot read the guest binary {args.binary}: {err.strerror}",
                            "give --binary the path of a built guest program (make guest)") from None
    except MmError as err:
        raise ForkdiffError(str(err), "give a static non-PIE binary (gcc -static)") from None
    settings = FaultSettings(args.failslab_ignore_gfp_wait == "Y", args.page_ignore_gfp_wait == "Y",
                             args.page_min_order, None if args.no_stack_filter else "dup_mmap")
    try:
        recs = predict.records(sc, args.variant, program=args.program, total=args.total,
                               settings=settings,
                               config=KernelConfig(per_vma_lock=not args.no_per_vma_lock),
                               elf=elf, measurements=meas)
    except (ValueError, MmError) as err:
        raise ForkdiffError(f"{args.scenario}: {err}", "change the scenario or --total") from None
    out = sys.stdout
    for r in recs:
        out.write(json.dumps(r, separators=(",", ":")) + "\n")
    return 0
