"""The suites, one object each (orchestrator/suite_defs/<name>.py, a Suite of base.py): its
guest program, kernel profile, default scenarios, final record, plan, cost estimate, what the
simulator predicts for it, and the names of its comparison and kernel-only rules. Adding a suite is adding one module here and its line in REGISTRY below
(docs/suites.md, "Adding a suite").

One module per suite, not one table per property: everything about a suite reads in one place,
and a property a suite does not have (spawn has no default scenarios, no per-job comparer) is
the base class's default instead of a missing key. The package is named suite_defs, not suites,
because orchestrator/run/suites.py (running suites on guests) already has that name.
"""

from __future__ import annotations

from ..errors import ForkdiffError
from . import counts, faults, maps, spawn
from .base import Job, Suite

REGISTRY: dict[str, Suite] = {s.name: s for s in (maps.SUITE, faults.SUITE, counts.SUITE, spawn.SUITE)}
NAMES = tuple(REGISTRY)  # in run order: maps, faults, counts, spawn (vm-test's default SUITES=)


def get(name: str) -> Suite:
    """The suite called `name`, or a ForkdiffError naming the suites there are."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise ForkdiffError(f"unknown suite {name!r}", f"use one of: {', '.join(NAMES)}") from None


__all__ = ["NAMES", "REGISTRY", "Job", "Suite", "get"]
