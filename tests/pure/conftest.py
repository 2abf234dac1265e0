"""Fixtures shared by the unit tests: the spawn observations recorded from real guests
(tests/data/spawn-run: `forkdiff vm-test SUITES=spawn` on the 6.12 perf kernels under -icount,
the seed's counts up to 6,421 VMAs and the 11 calibration layouts on the baseline kernel)."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.analysis.compare import Predictor, load_elves
from orchestrator.results.observations import read_records

SPAWN_RUN = Path(__file__).resolve().parents[1] / "data" / "spawn-run"


@pytest.fixture(autouse=True)
def _no_history_db(monkeypatch):
    """Unit tests never record into the user's results database (compare/report record every
    run, orchestrator/analysis/history_db.py): tests of it give --db a file of their own."""
    monkeypatch.setenv("FORKDIFF_HISTORY_DB", "off")
    # nor keep predictions in its cache (orchestrator/analysis/prediction_cache.py): tests of
    # it give FORKDIFF_CACHE a folder of their own
    monkeypatch.setenv("FORKDIFF_PREDICTION_CACHE", "off")


@pytest.fixture(scope="session")
def spawn_records() -> list[dict]:
    return read_records(SPAWN_RUN / "observations.jsonl")


@pytest.fixture(scope="session")
def spawn_predictor() -> Predictor:
    return Predictor(load_elves(SPAWN_RUN / "guest-elf.json"))
