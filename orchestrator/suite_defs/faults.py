"""faults: faultsweep per scenario, a fail-nth sweep over the checks fork makes under dup_mmap,
with the failure path's allocations and leaks per step (orchestrator/analysis/rules.py
compare_faults); layouts above count_only_above VMAs only count the checks."""

from __future__ import annotations

from .base import Job, PlanOptions, Suite


class Faults(Suite):
    name = "faults"
    program = "faultsweep"
    profile = "faults"
    final = "sweep_end"  # with KMEMLEAK=1: "kmemleak" (run/suites.py RunOptions.final)
    scenarios = ("mixed-small", "anon-touched-21", "anon-touched-421", "anon-touched-3221")
    comparer = "compare_faults"
    predicts = ("counts", "fault_outcome")  # fault_outcome: only for a sweep with steps
    kernel_only = "faults_rows"
    reads_slab_counters = True
    injects_faults = True

    def job_args(self, opts: PlanOptions, layout_args: tuple[str, ...], n: int) -> tuple[tuple[str, ...], float]:
        if n > opts.count_only_above:
            return ("--count-only", *layout_args), 300 + n / 10
        args = ("--kmsg", "--max-k", str(opts.max_k),
                "--leak-wait-ms", str(opts.leak_wait_ms),
                "--settle-ms", str(opts.settle_ms),
                *(("--page-tables",) if opts.page_tables else ()),
                *opts.observer_args, *layout_args)
        return args, 600 + n * n / 20  # the sweep is quadratic in the VMA count

    def estimate(self, opts: PlanOptions, job: Job, n: int) -> float:
        cost = 2.0 + n / 500 if "--count-only" in job.args else 2.0 + n * n / 9000
        return cost * (2.5 if opts.scans_leaks else 1.0)


SUITE = Faults()
