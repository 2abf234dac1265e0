"""Simulator predictions kept on disk (orchestrator/analysis/prediction_cache.py), on the spawn
observations recorded from real guests (tests/data/spawn-run) and the real simulator, in a
FORKDIFF_CACHE of the test's own. The second compare reads every prediction from the cache:
simulator.predict.records is replaced by a function that fails (the one fake here), and the
verdicts are the same, row for row."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from orchestrator.analysis import job_predictions, prediction_cache
from orchestrator.analysis.compare import compare_records
from orchestrator.analysis.job_predictions import Predictor
from orchestrator.results.elves import load_elves
from simulator.fork import FaultSettings, KernelConfig

SPAWN_RUN = Path(__file__).resolve().parents[1] / "data" / "spawn-run"


@pytest.fixture
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FORKDIFF_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("FORKDIFF_PREDICTION_CACHE", "on")
    return tmp_path / "cache" / prediction_cache.FOLDER


def _verdicts(records):
    elves = load_elves(SPAWN_RUN / "guest-elf.json")
    verdicts, _timing, _cost = compare_records(records, predictor=Predictor(elves))
    return verdicts.to_dict(orient="records")


def test_second_compare_reads_every_prediction_from_disk(own_cache, spawn_records, monkeypatch):
    first = _verdicts(spawn_records)
    entries = sorted(own_cache.glob("*.pickle"))
    assert len(entries) >= 11  # the seed's counts and the calibration layouts, per model

    def no_simulator(*_a, **_k):
        raise AssertionError("predicted again instead of read from the cache")

    monkeypatch.setattr(job_predictions.sim_predict, "records", no_simulator)
    assert _verdicts(spawn_records) == first

    # an entry cut short is computed again (here: by the failing fake, so it raises)
    entries[0].write_bytes(pickle.dumps([{"cut": True}])[:7])
    with pytest.raises(AssertionError, match="predicted again"):
        _verdicts(spawn_records)


def test_off_computes_and_keeps_nothing(own_cache, spawn_records, monkeypatch):
    monkeypatch.setenv("FORKDIFF_PREDICTION_CACHE", "off")
    _verdicts(spawn_records)
    assert not own_cache.exists()


def test_key_follows_every_input_and_not_set_order():
    base = ("{}", "spawn", 121, "patched", ("op_counts",), KernelConfig(), FaultSettings())
    k = prediction_cache.key_of(*base)
    assert k == prediction_cache.key_of(*base)
    for i, other in enumerate(["{\"a\": 1}", "faultsweep", 421, "baseline", ("counts",),
                               KernelConfig(vma_lock="embedded"),
                               FaultSettings(failslab_ignore_gfp_wait=False)]):
        changed = list(base)
        changed[i] = other
        assert prediction_cache.key_of(*changed) != k, i
    # a frozenset's iteration order changes with the process's hash seed; the key does not
    assert prediction_cache.key_of(frozenset({"vm_area_struct", "anon_vma", "maple_node"})) == \
        prediction_cache.key_of(frozenset({"maple_node", "anon_vma", "vm_area_struct"}))
    assert len(prediction_cache.simulator_digest()) == 64
