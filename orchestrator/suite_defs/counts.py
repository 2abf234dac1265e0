"""counts: forkcount per scenario, slab objects allocated per fork (SLUB_STATS alloc counters),
the median of repeated forks (compared exactly: orchestrator/analysis/rules.py compare_counts)."""

from __future__ import annotations

from .base import Job, PlanOptions, Suite

REPEATS = 15  # forks per scenario unless REPEATS= says otherwise


class Counts(Suite):
    name = "counts"
    program = "forkcount"
    profile = "faults"
    final = "summary"
    scenarios = ("anon-touched-21", "anon-touched-421", "anon-touched-3221", "mixed-small")
    comparer = "compare_counts"
    predicts = ("counts",)
    reads_slab_counters = True

    def job_args(self, opts: PlanOptions, layout_args: tuple[str, ...], n: int) -> tuple[tuple[str, ...], float]:
        repeats = opts.repeats or REPEATS
        return ("--repeats", str(repeats), *layout_args), 120 + n / 20 * repeats

    def estimate(self, opts: PlanOptions, job: Job, n: int) -> float:
        return 1.0 + (opts.repeats or REPEATS) * (0.1 + n / 20000)


SUITE = Counts()
