"""Helpers of the maple differential suite: replay an operation list in Python and in the
oracle (the kernel's lib/maple_tree.c) and compare the JSON lines; save failing lists.

A failing list is saved outside the source tree, in the cache (failures_dir()); the committed
example set the suite replays every time is tests/tree/oracle/regressions/*.ops."""

from __future__ import annotations

from pathlib import Path

from orchestrator.cache import cache_path
from orchestrator.prepare.oracle import run_oracle_raw
from orchestrator.prepare.oracle_check import first_difference
from simulator.maple.ops import format_ops, replay

REGRESSIONS = Path(__file__).resolve().parent / "regressions"
STATS = {"sequences": 0, "mismatches": 0, "dumps": 0}


def compare(ops: list[tuple], sequences: int = 1, save_as: str | None = None) -> None:
    """Assert Python and the oracle print the same lines for `ops` (which may hold several
    sequences, each starting with a 'tree' line)."""
    text = format_ops(ops)
    oracle = run_oracle_raw(text).splitlines()
    python, _ = replay(ops)
    STATS["sequences"] += sequences
    STATS["dumps"] += len(oracle)
    mismatch = None
    if len(oracle) != len(python):
        mismatch = f"{len(oracle)} oracle lines, {len(python)} python lines"
    else:
        for i, (o, p) in enumerate(zip(oracle, python, strict=True)):
            if o != p:
                mismatch = f"output line {i}: {first_difference(o, p)}"
                break
    if mismatch:
        STATS["mismatches"] += 1
        if save_as:
            saved = failures_dir() / save_as
            saved.write_text(f"# saved by tests/tree/oracle: {mismatch[:200]}\n" + text)
            mismatch += (f" (operation list saved as {saved}; copy it into {REGRESSIONS} to "
                         "replay it on every run)")
        raise AssertionError(mismatch)


def failures_dir() -> Path:
    """Where failing operation lists go: the cache (FORKDIFF_CACHE), never the source tree."""
    return cache_path("oracle-failures")
