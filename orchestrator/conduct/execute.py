"""The execute stage: the run's jobs on guests. An Executor runs an Execution (the run's options,
kernels and job list) and returns the number of errors; the records go into the run's
observations.jsonl (orchestrator.results.observations).

    ThreadExecutor   here, one worker thread per kernel (JOBS= guests at a time)
    DaskExecutor     on Dask distributed (orchestrator/conduct/dask_executor.py)
    ShardExecutor    the i-th of n shards of the job list (--shard i/n), run by another executor

The conductor picks one from the options (orchestrator.conductor.executor_for) and does not
know which one runs."""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, replace
from typing import Protocol

from ..results.meta import RunMeta
from ..results.observations import ObservationLog
from ..run import shards
from ..run.shards import Unit, units_of
from ..run.suites import SuiteResult, run_variant
from ..vm import guest as vm
from ..vm.guest_pool import GuestPool
from .jobs import run_units, suite_jobs, suite_options
from .options import Progress, VmTestOptions


@dataclass
class Execution:
    opts: VmTestOptions
    variants: list[str]  # the run's kernels, in run order
    scenarios: list | None  # SCENARIOS= loaded (None: each suite's own)
    say: Progress
    kvm_ok: bool
    meta: RunMeta

    def units(self, opts: VmTestOptions | None = None) -> list[Unit]:
        """Every job of the run (with `opts`: as those options split the fault sweeps)."""
        return run_units(opts or self.opts, self.variants, self.scenarios, self.say, lambda: self.kvm_ok)

    def save(self) -> None:
        self.meta.save(self.opts.out)


class Executor(Protocol):
    def execute(self, ex: Execution, keep: set[str] | None = None) -> int:
        """Run the jobs (only those named in `keep`, when given); return the number of errors."""


def variant_suites(opts: VmTestOptions, variant: str, scenarios, say: Progress,
                   kvm_usable, keep: set[str] | None = None) -> dict[str, tuple[SuiteResult, float]]:
    """Every suite of the run on one kernel variant, in order, in this worker thread (only the
    jobs named in `keep`, a shard's, when given). Suites of one profile share one guest
    (GuestPool): maps, faults and counts boot the faults kernel once."""
    done: dict[str, tuple[SuiteResult, float]] = {}
    log = ObservationLog(opts.out)
    with GuestPool() as guests:
        for suite in opts.suites:
            t0 = time.monotonic()
            ro = suite_options(opts, suite, variant, scenarios, say, kvm_usable)
            jobs = [u.job for u in units_of(ro, variant, suite_jobs(ro, variant), opts.parts, opts.sweep_part_s)
                    if keep is None or u.name in keep]
            if not jobs:
                continue
            res = SuiteResult()
            run_variant(ro, variant, jobs, log, res, guests)
            done[suite] = (res, time.monotonic() - t0)
            say("suite", f"{suite} on {variant}: {res.records} records, {len(res.errors)} errors "
                         f"in {done[suite][1]:.0f} s")
    return done


class ThreadExecutor:
    """One worker thread per kernel, at most JOBS= (default: one per CPU) at a time."""

    def execute(self, ex: Execution, keep: set[str] | None = None) -> int:
        opts, say, meta = ex.opts, ex.say, ex.meta
        variants = ex.variants
        if keep is not None:
            names = {u.variant for u in ex.units() if u.name in keep}
            variants = [v for v in variants if v in names]
        workers = max(1, min(len(variants), opts.jobs or os.cpu_count() or 1))
        meta.parallel_guests = workers
        say("suites", f"{', '.join(opts.suites)} on {', '.join(variants)}, {workers} guest(s) at a time")
        errors = 0
        t_suites = time.monotonic()
        with vm.terminate_raises(), ThreadPoolExecutor(max_workers=workers) as pool:
            futures = {pool.submit(variant_suites, opts, v, ex.scenarios, say, lambda: ex.kvm_ok, keep): v
                       for v in variants}
            try:
                for fut in as_completed(futures):
                    for suite, (res, seconds) in fut.result().items():
                        meta.suite_wall_s[(suite, futures[fut])] = round(seconds, 1)
                        errors += len(res.errors)
                    ex.save()
            except BaseException:
                vm.stop_all_guests()  # workers see their guests lost and end; no new guest starts
                raise
        meta.suites_wall_s = round(time.monotonic() - t_suites, 1)
        return errors


@dataclass
class ShardExecutor:
    """The i-th of n shards of the run's job list (orchestrator/run/shards.py), run by `inner`;
    its part is written to <out>/shard.json for `forkdiff merge`."""

    shard: tuple[int, int]
    inner: Executor

    def execute(self, ex: Execution, keep: set[str] | None = None) -> int:
        mine = shards.select(ex.units(), self.shard, ex.opts.out, ex.meta, ex.say)
        ex.save()
        return self.inner.execute(ex, mine if keep is None else mine & keep)


def task_options(opts: VmTestOptions, out) -> VmTestOptions:
    """The options a Dask task runs its jobs with: into its own scratch folder, no shard."""
    return replace(opts, out=out, resume=False, executor="", shard=None)
