"""maps: mapsprobe per scenario, the parent's maps before and after the fork and the child's,
DONTFORK and WIPEONFORK VMAs (compared exactly: orchestrator/analysis/rules.py compare_maps)."""

from __future__ import annotations

from .base import Job, PlanOptions, Suite


class Maps(Suite):
    name = "maps"
    program = "mapsprobe"
    profile = "faults"
    final = "parent_after"
    scenarios = ("mixed-small", "dontfork-only", "wipeonfork-only", "anon-touched-21")
    comparer = "compare_maps"
    predicts = ("child_maps", "map_count")
    kernel_only = "maps_rows"

    def job_args(self, opts: PlanOptions, layout_args: tuple[str, ...], n: int) -> tuple[tuple[str, ...], float]:
        return layout_args, 120 + n / 20

    def estimate(self, opts: PlanOptions, job: Job, n: int) -> float:
        return 1.5 + n / 400


SUITE = Maps()
