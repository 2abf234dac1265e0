"""A run's jobs: the RunOptions of each suite on each kernel, and every job of the run as a
Unit (orchestrator/run/shards.py) in run order (variant, suite, the suite's job order). Every
executor, a shard and a Dask task compute the same list from the same options."""

from __future__ import annotations

from ..run.faultsetup import FaultOptions
from ..run.shards import Unit, units_of
from ..run.suites import RunOptions, plan, resolve_icount, variant_jobs
from .options import Progress, VmTestOptions


def suite_options(opts: VmTestOptions, suite: str, variant: str, scenarios, say: Progress,
                  kvm_usable) -> RunOptions:
    """The RunOptions of one suite on one kernel variant of this run."""
    return resolve_icount(RunOptions(suite=suite, out=opts.out, variants=(variant,), vmas=opts.vmas,
                          duration=opts.duration, scenarios=scenarios if suite != "spawn" else None,
                          repeats=(opts.repeats or None) if suite == "spawn" else None, resume=opts.resume,
                          fault=FaultOptions(slab="slab" in opts.faults,
                                             page_alloc="page" in opts.faults),
                          kmemleak=opts.kmemleak, observers=opts.observers,
                          observer_seed=opts.observer_seed,
                          perf_kernels=opts.perf_kernels, debug_vm=opts.debug_vm,
                          spawn_timing=opts.spawn_timing, tree=opts.tree, patches=opts.patches,
                          calibrate_on=opts.spawn_fit_on, insn_profile=opts.insn_profile,
                          log=lambda m: say("suite", m)), kvm_usable)


def suite_jobs(ro: RunOptions, variant: str) -> list:
    return plan(ro) + variant_jobs(ro, variant)


def run_units(opts: VmTestOptions, variants: list[str], scenarios, say: Progress,
              kvm_usable) -> list[Unit]:
    """Every job of the run, in run order (variant, suite, the suite's job order)."""
    units = []
    for v in variants:
        for suite in opts.suites:
            ro = suite_options(opts, suite, v, scenarios, say, kvm_usable)
            units += units_of(ro, v, suite_jobs(ro, v), opts.parts, opts.sweep_part_s)
    return units
