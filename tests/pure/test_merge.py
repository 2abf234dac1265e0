"""forkdiff merge's refusals and joins (orchestrator/run/merge.py) on hand-written shard folders
(fakes: records, run.json and shard.json written by the test, no VM)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestrator.errors import ForkdiffError
from orchestrator.results.observations import read_records
from orchestrator.run.merge import merge

GUEST = {"mapsprobe": "a" * 64}
QEMU = "QEMU emulator version 7.2.15"


def _shard(folder: Path, i: int, n: int, records: list[dict], guest=GUEST, qemu=QEMU,
           plan: str = "p1") -> Path:
    folder.mkdir(parents=True)
    (folder / "observations.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (folder / "run.json").write_text(json.dumps({"run": folder.name, "guest binaries": guest,
                                                 "qemu version": qemu, "model map": {"patched": "patched"}}))
    (folder / "shard.json").write_text(json.dumps({"shard": i, "of": n, "plan": plan, "jobs": 2,
                                                   "units": []}))
    (folder / "guest-elf.json").write_text(json.dumps({"mapsprobe": {"loads": []}}))
    return folder


def _rec(key: str, value) -> dict:
    return {"key": key, "value": value, "values": {"v": value}, "run_id": key}


def test_merge_joins_shards_and_keeps_identical_duplicates_once(tmp_path: Path) -> None:
    a = _shard(tmp_path / "a", 1, 2, [_rec("k1", 1), _rec("k2", 2)])
    b = _shard(tmp_path / "b", 2, 2, [_rec("k3", 3), _rec("k2", 2) | {"run_id": "other"}])
    m = merge(tmp_path / "m", [a, b])
    assert [r["key"] for r in read_records(tmp_path / "m" / "observations.jsonl")] == ["k1", "k2", "k3"]
    assert (m.records, m.duplicates) == (3, 1)
    assert json.loads((tmp_path / "m" / "run.json").read_text())["model map"] == {"patched": "patched"}
    assert (tmp_path / "m" / "guest-elf.json").read_text() == (a / "guest-elf.json").read_text()


def test_merge_refuses_a_key_with_different_values(tmp_path: Path) -> None:
    a = _shard(tmp_path / "a", 1, 2, [_rec("maps|baseline|faults|x|child", 5)])
    b = _shard(tmp_path / "b", 2, 2, [_rec("maps|baseline|faults|x|child", 6)])
    with pytest.raises(ForkdiffError, match=r"maps\|baseline\|faults\|x\|child differs"):
        merge(tmp_path / "m", [a, b])
    assert not (tmp_path / "m" / "observations.jsonl").exists()


@pytest.mark.parametrize(("kw", "match"), [({"guest": {"mapsprobe": "b" * 64}}, "different guest binaries"),
                                           ({"qemu": "QEMU emulator version 9.0"}, "different QEMU version"),
                                           ({"plan": "p2"}, "shards of different runs")])
def test_merge_refuses_other_binaries_qemu_or_plan(tmp_path: Path, kw: dict, match: str) -> None:
    a = _shard(tmp_path / "a", 1, 2, [_rec("k1", 1)])
    b = _shard(tmp_path / "b", 2, 2, [_rec("k2", 1)], **kw)
    with pytest.raises(ForkdiffError, match=match):
        merge(tmp_path / "m", [a, b])


def test_merge_refuses_missing_or_repeated_shards(tmp_path: Path) -> None:
    a = _shard(tmp_path / "a", 1, 3, [_rec("k1", 1)])
    b = _shard(tmp_path / "b", 2, 3, [_rec("k2", 1)])
    with pytest.raises(ForkdiffError, match="3/3 missing"):
        merge(tmp_path / "m", [a, b])
    with pytest.raises(ForkdiffError, match="given twice"):
        merge(tmp_path / "m", [a, a])


def test_merge_refuses_a_folder_that_is_not_a_run(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ForkdiffError, match="not a run folder"):
        merge(tmp_path / "m", [tmp_path / "empty"])


def _kernel(folder: Path, name: str, sha: str, built_at: str) -> None:
    (folder / "kernels").mkdir(exist_ok=True)
    (folder / "kernels" / name).write_text(json.dumps({"variant": "patched", "profile": "faults",
                                                       "bzimage": {"sha256": sha}, "built_at": built_at}))


def test_merge_keeps_one_record_per_kernel_and_refuses_other_builds(tmp_path: Path) -> None:
    a = _shard(tmp_path / "a", 1, 2, [_rec("k1", 1)])
    b = _shard(tmp_path / "b", 2, 2, [_rec("k2", 1)])
    _kernel(a, "patched-faults.json", "1" * 64, "2026-11-27T10:00")
    _kernel(b, "patched-faults.json", "1" * 64, "2026-11-27T11:00")  # the same build, built twice
    _kernel(b, "patched-perf.json", "2" * 64, "2026-11-27T11:00")
    merge(tmp_path / "m", [a, b])
    assert sorted(p.name for p in (tmp_path / "m" / "kernels").iterdir()) == ["patched-faults.json",
                                                                             "patched-perf.json"]
    _kernel(b, "patched-faults.json", "3" * 64, "2026-11-27T11:00")
    with pytest.raises(ForkdiffError, match="ran different kernels"):
        merge(tmp_path / "m2", [a, b])
