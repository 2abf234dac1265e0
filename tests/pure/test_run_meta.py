"""run.json typed (orchestrator.results.meta.RunMeta): every run folder recorded in tests/data
loads into a RunMeta and is written back key for key, in the same order, and what a run sets
through the typed fields lands under the keys the readers (report, reply, merge, history) use."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestrator.results.folder import read_meta
from orchestrator.results.meta import RunMeta

DATA = Path(__file__).resolve().parents[1] / "data"
RECORDED = sorted(DATA.glob("*/run.json"))


@pytest.mark.parametrize("path", RECORDED, ids=lambda p: p.parent.name)
def test_recorded_run_json_round_trips(path: Path, tmp_path: Path) -> None:
    d = json.loads(path.read_text())
    meta = RunMeta.from_dict(d)
    assert meta.extra == {}  # every key a run writes is a field
    assert list(meta.to_dict().items()) == list(d.items())
    meta.save(tmp_path)
    assert read_meta(tmp_path) == d


def test_typed_fields_use_the_keys_the_readers_know(tmp_path: Path) -> None:
    meta = RunMeta(run="r1", made_of="patched: the tree as it is", model_map={"patched": "patched"})
    k = meta.kernel("patched", "faults")
    k.release, k.wall_s, k.slub_debug = "6.12.57-forkdiff-patched-faults", 12.5, "none"
    meta.suite_wall_s[("maps", "patched")] = 30.0
    meta.extra["note"] = "by hand"
    meta.save(tmp_path)
    d = read_meta(tmp_path)
    assert d == {"run": "r1", "made of": "patched: the tree as it is",
                 "kernel patched/faults": "6.12.57-forkdiff-patched-faults",
                 "kernel patched/faults wall s": 12.5, "kernel patched/faults slub_debug": "none",
                 "model map": {"patched": "patched"}, "suite maps patched wall s": 30.0,
                 "note": "by hand"}
    assert RunMeta.load(tmp_path).kernels["patched/faults"].wall_s == 12.5


def test_a_folder_without_run_json_reads_empty(tmp_path: Path) -> None:
    assert read_meta(tmp_path) == {} and RunMeta.load(tmp_path).to_dict() == {}
