"""`forkdiff vm-test`: build both variants, run every suite, compare, report (make vm-test)."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

from ..cli_env import insn_profile_knob, patches_raw, tree_knob
from ..conductor import VmTestOptions, run
from ..errors import ForkdiffError
from ..prepare.gitbase import tree_at_base
from ..prepare.series import expand
from ..prepare.variants import KERNELS
from ..results.outdir import new_results_dir, run_folder
from ..run.faultsetup import parse_faults
from ..run.observers import parse_observers, parse_seed
from ..run.shards import parse_executor, parse_shard
from ..run.suites import SPAWN_VMAS
from ..suite_defs import NAMES as SUITES
from .compare_cmd import parse_models


def _list(text: str, allowed: tuple[str, ...] | None, what: str) -> tuple[str, ...]:
    items = tuple(x for x in text.replace(",", " ").split() if x)
    bad = [x for x in items if allowed and x not in allowed]
    if bad or not items:
        raise ForkdiffError(f"unknown {what} {', '.join(bad) or repr(text)}",
                            f"{what} is a list of: {', '.join(allowed or ())}")
    return items


def _vmas(text: str) -> tuple[int, ...]:
    try:
        vals = tuple(int(x) for x in text.replace(",", " ").split())
    except ValueError:
        raise ForkdiffError(f"VMAS={text!r} is not a list of integers", "e.g. VMAS=21,421,3221") from None
    if not vals or min(vals) < 1:
        raise ForkdiffError(f"VMAS={text!r}: counts must be positive", "e.g. VMAS=21,421,3221")
    if max(vals) > 65530:
        raise ForkdiffError(f"VMAS: {max(vals)} is above vm.max_map_count (65530)",
                            "use VMA counts up to 65530")
    return vals


def _seconds(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        v = 0.0
    if v <= 0:
        raise ForkdiffError(f"SWEEP_PART={text!r} is not a positive number of seconds", "e.g. SWEEP_PART=600")
    return v


def _run(args: argparse.Namespace) -> int:
    env = os.environ
    explicit_out = args.out or env.get("OUT")
    duration = float(args.duration or env.get("DURATION") or 2.0)
    if duration <= 0:
        raise ForkdiffError(f"DURATION={duration} must be > 0", "e.g. DURATION=2")
    resume = args.resume or (env.get("RESUME") or "").lower() in ("1", "yes", "true")
    if explicit_out:
        run_folder(Path(explicit_out), resume)  # before a tree is unpacked or a kernel built
    # PATCHES=: patch files, mboxes or format-patch folders; a series' base-commit picks the
    # commit of a git checkout they go onto (orchestrator/prepare/series.py, gitbase.py)
    raw_patches = patches_raw(args.patches)
    series = expand([Path(p) for p in shlex.split(raw_patches)])
    tree = tree_at_base(tree_knob(args.tree), series.base_commit,
                        raw_patches, lambda m: print(f"forkdiff: {m}", file=sys.stderr, flush=True))
    opts = VmTestOptions(
        out=Path(explicit_out) if explicit_out else Path(),
        suites=_list(args.suites or env.get("SUITES") or " ".join(SUITES), SUITES, "SUITES"),
        vmas=_vmas(args.vmas or env.get("VMAS") or ",".join(map(str, SPAWN_VMAS))),
        duration=duration,
        repeats=int(args.repeats or env.get("REPEATS") or 0),
        tree=tree,
        patches=series.patches,
        models=parse_models(args.model or env.get("MODEL")),
        resume=resume,
        jobs=int(args.jobs or env.get("JOBS") or 0),
        spawn_timing=args.spawn_timing or env.get("SPAWN_TIMING") or "icount",
        scenarios=tuple((args.scenarios or env.get("SCENARIOS") or "").replace(",", " ").split()),
        variants=_list(args.variants or env.get("VARIANTS"), KERNELS, "VARIANTS")
        if (args.variants or env.get("VARIANTS")) else (),
        kmemleak=args.kmemleak or (env.get("KMEMLEAK") or "").lower() in ("1", "yes", "true"),
        perf_kernels=args.perf_kernels or (env.get("PERF_KERNELS") or "").lower() in ("1", "yes", "true"),
        debug_vm=args.debug_vm or (env.get("DEBUG_VM") or "").lower() in ("1", "yes", "true"),
        faults=_faults(args.faults or env.get("FAULTS")),
        observers=parse_observers(args.observers or env.get("OBSERVERS")),
        observer_seed=parse_seed(args.observer_seed or env.get("OBSERVER_SEED")),
        shard=parse_shard(args.shard or env["SHARD"]) if (args.shard or env.get("SHARD")) else None,
        executor=parse_executor(args.executor or env.get("EXECUTOR") or ""),
        sweep_part_s=_seconds(args.sweep_part or env.get("SWEEP_PART") or "600"),
        against=Path(a).expanduser() if (a := args.against or env.get("AGAINST")) else None,
        history_db=args.db or "",
        insn_profile=insn_profile_knob(),
    )
    if not explicit_out:
        if opts.resume:
            raise ForkdiffError("--resume needs the folder of the run to resume", "give OUT=results/<timestamp>")
        opts.out = new_results_dir()
    return run(opts)


def _faults(text: str | None) -> tuple[str, ...]:
    """FAULTS= / --faults -> the kinds fail-nth counts, in FAULT_KINDS order."""
    slab, page = parse_faults(text)
    return tuple(k for k, on in (("slab", slab), ("page", page)) if on)


def register(sub) -> None:
    p = sub.add_parser("vm-test", help="the full differential run: kernels, suites, compare, report")
    p.add_argument("--out", help="results folder (OUT=; default results/<timestamp>)")
    p.add_argument("--suites", help="suites to run (SUITES=; default: maps faults counts spawn)")
    p.add_argument("--vmas", help="spawn VMA counts (VMAS=; default: the seed's 11 counts)")
    p.add_argument("--duration", help="spawn guest seconds per measurement (DURATION=; default 2)")
    p.add_argument("--repeats", help="spawn runs per VMA count (REPEATS=; default 1 under -icount, where a run repeats "
                                     "exactly, 5 with SPAWN_TIMING=realtime)")
    p.add_argument("--tree", help="kernel tree: a path or debian:SUITE:PACKAGE (KERNEL_TREE=; default Debian's linux-source-6.12)")
    p.add_argument("--patches", help="extra patches for the patched variant (PATCHES=): patch files, an mbox "
                   "(git format-patch --stdout, b4 am) or a folder of git format-patch output, in series order")
    p.add_argument("--model", help="model per kernel (MODEL=): baseline, patched, or a mapping")
    p.add_argument("--resume", action="store_true", help="continue the run in --out/OUT (RESUME=1)")
    p.add_argument("--scenarios", help="maps/faults/counts scenarios, names or files (SCENARIOS=; "
                                       "default: each suite's own)")
    p.add_argument("--spawn-timing", help="spawn: icount (virtual time, default) or realtime "
                                          "(KVM only; SPAWN_TIMING=)")
    p.add_argument("--jobs", help="guests at a time (JOBS=; default: one per variant, at most one per CPU)")
    p.add_argument("--against", metavar="OLD", help="compare spawn forks/s with an earlier results "
                   "folder (AGAINST=), e.g. another version of the tree: a slowdown beyond the "
                   "modelled change is a mismatch; refused when QEMU or the guest programs differ")
    p.add_argument("--variants", help="kernels to run (VARIANTS=; default: every kernel the tree gives: baseline and "
                        "patched, and reference with PATCHES=)")
    p.add_argument("--kmemleak", action="store_true",
                   help="faults suite: boot with kmemleak=on, scan for leaks after every sweep (KMEMLEAK=1)")
    p.add_argument("--faults", help="faults suite: what fail-nth counts (FAULTS=): slab (default), page "
                                    "(the child's page tables, under copy_page_range), or slab,page")
    p.add_argument("--observers", help="faults suite: tasks that run beside every sweep and reach the "
                   "failing children's mm (OBSERVERS=): all, or a list of swapoff, rmap, proc "
                   "(default none; swap on zram, in the faults kernels; docs/observers.md)")
    p.add_argument("--perf-kernels", action="store_true",
                   help="spawn on perf kernels of their own, without fault injection and slab debugging "
                        "(PERF_KERNELS=1; two more kernel builds; default: the faults kernels, "
                        "docs/profiles.md)")
    p.add_argument("--debug-vm", action="store_true",
                   help="maps, faults and counts on the faults kernels + CONFIG_DEBUG_VM and "
                        "DEBUG_VM_MAPLE_TREE (DEBUG_VM=1; two more kernel builds)")
    p.add_argument("--observer-seed", help="seed of the observers' pauses (OBSERVER_SEED=; default 1)")
    p.add_argument("--shard", help="run only shard i of n (SHARD=i/n; jobs balanced by estimated "
                                   "cost); join the shard folders with 'forkdiff merge'")
    p.add_argument("--executor", help="run the jobs on Dask (EXECUTOR=): 'dask' (a LocalCluster, one "
                                      "QEMU per worker) or 'dask:ADDRESS' (a running scheduler)")
    p.add_argument("--sweep-part", help="with --shard/--executor: split fault sweeps estimated longer "
                                        "than this many seconds into k-ranges (SWEEP_PART=; default 600)")
    p.add_argument("--db", help="results database to record the run in (default: "
                                "$FORKDIFF_HISTORY_DB, else history.sqlite in the cache)")
    p.set_defaults(func=_run)
