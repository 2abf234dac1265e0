"""Regression against an earlier run (orchestrator/analysis/against.py), on observations recorded
from real guests (tests/data/spawn-run, the 6.12 perf kernels under -icount). The "earlier"
and "this" runs are two copies of that folder, one of them changed on purpose (a fake of our
own making: scaled forks/s, another QEMU version or guest binary in run.json); what is tested
is the comparison, not a kernel."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import pytest

from orchestrator.analysis.against import RR, check_early
from orchestrator.analysis.compare import compare_dir
from orchestrator.analysis.spawn_model import SAME_WORK_BAND_PCT
from orchestrator.errors import ForkdiffError
from orchestrator.results.observations import read_records

DATA = Path(__file__).resolve().parents[1] / "data" / "spawn-run"
META = {"qemu version": "QEMU emulator version 7.2.19 (Debian 1:7.2+dfsg-7+deb12u18)",
        "guest binaries": {"spawn": "a" * 64, "mapsprobe": "b" * 64}}


def _folder(path: Path, scale: dict[str, float] | None = None, meta: dict | None = None,
            model_map: dict | None = None, profile: str | None = None) -> Path:
    path.mkdir(parents=True)
    shutil.copy(DATA / "guest-elf.json", path / "guest-elf.json")
    recs = read_records(DATA / "observations.jsonl")
    with open(path / "observations.jsonl", "w") as fh:
        for r in recs:
            r = copy.deepcopy(r)
            f = (scale or {}).get(r["variant"], 1.0)
            if profile:
                r["profile"] = profile
            if r["measurement"] == "spawn":
                r["value"] *= f
                r["values"]["forks_per_s"] *= f
            fh.write(json.dumps(r) + "\n")
    (path / "run.json").write_text(json.dumps({**META, **(meta or {}),
                                               **({"model map": model_map} if model_map else {})}))
    return path


def _rr(df):
    return df[df["axis"] == RR]


def test_the_same_measurements_match_with_the_measurement_band(tmp_path):
    old = _folder(tmp_path / "old")
    new = _folder(tmp_path / "new", {"patched": 1.001})
    rr = _rr(compare_dir(new, against=old))
    assert len(rr) == 16 and set(rr["variant"]) == {"baseline", "patched"}  # 8 seed counts each
    assert (rr["verdict"] == "match").all(), rr[["variant", "key", "detail"]]
    assert set(rr["band"]) == {f"±{SAME_WORK_BAND_PCT:.2f}% measurement (-icount repeat spread + margin)"}
    assert (new / "verdicts.jsonl").read_text().count(RR) == 16


def test_a_2_percent_slowdown_of_one_kernel_is_a_regression_at_every_count(tmp_path):
    old = _folder(tmp_path / "old")
    new = _folder(tmp_path / "new", {"patched": 0.98})
    rr = _rr(compare_dir(new, against=old))
    assert (rr[rr["variant"] == "patched"]["verdict"] == "mismatch").all()
    assert (rr[rr["variant"] == "baseline"]["verdict"] == "match").all()
    assert rr[rr["variant"] == "patched"]["detail"].str.startswith("change -2.00%").all()


def test_a_speedup_is_not_a_regression(tmp_path):
    old = _folder(tmp_path / "old")
    new = _folder(tmp_path / "new", {"baseline": 1.05})
    rr = _rr(compare_dir(new, against=old))
    assert set(rr[rr["variant"] == "baseline"]["verdict"]) == {"info"}
    assert rr[rr["variant"] == "baseline"]["detail"].str.endswith("faster than predicted").all()


def test_different_modelled_work_is_priced_by_the_work_model(tmp_path):
    """The earlier run's patched kernel had the baseline dup_mmap() (its model map says so): the
    prediction moves by the modelled difference and the band is the model's."""
    old = _folder(tmp_path / "old", model_map={"baseline": "baseline", "patched": "baseline"})
    new = _folder(tmp_path / "new")
    df = compare_dir(new, against=old)
    rr = _rr(df)
    patched = rr[rr["variant"] == "patched"]
    assert patched["band"].str.contains("work model").all()
    cost = json.loads((new / "cost_model.json").read_text())
    assert set(patched["band"]) == {f"±{cost['tolerance_pct']:.2f}% work model (leave-one-layout-out)"}
    # the model predicts the __mt_dup kernel faster than the old loop's measured rate
    assert all(float(p) > float(o) * 0.9 for p, o in zip(patched["predicted"], patched["observed"], strict=True))


@pytest.mark.parametrize("change, says", [
    ({"qemu version": "QEMU emulator version 8.2.2"}, "QEMU differs"),
    ({"guest binaries": {"spawn": "c" * 64}}, "guest spawn binary differs"),
    ({"qemu version": None}, "QEMU differs"),
])
def test_folders_of_another_qemu_or_guest_binary_are_refused(tmp_path, change, says):
    old = _folder(tmp_path / "old", meta=change)
    new = _folder(tmp_path / "new")
    with pytest.raises(ForkdiffError, match=says):
        compare_dir(new, against=old)
    with pytest.raises(ForkdiffError, match=says):
        check_early(old, META)


def test_a_folder_without_spawn_or_observations_is_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ForkdiffError, match="no observations.jsonl"):
        check_early(tmp_path / "empty", META)
    maps_only = tmp_path / "maps"
    maps_only.mkdir()
    (maps_only / "observations.jsonl").write_text(json.dumps({"suite": "maps", "measurement": "x"}) + "\n")
    (maps_only / "run.json").write_text(json.dumps(META))
    with pytest.raises(ForkdiffError, match="no spawn measurements"):
        check_early(maps_only, META)


def test_a_folder_timed_on_the_other_kernel_profile_is_refused(tmp_path):
    """spawn on the faults kernels (the default) against a run on the perf kernels
    (PERF_KERNELS=1): the debug hooks cost each VMA alike, levels do not compare."""
    old = _folder(tmp_path / "old")  # the recorded run: perf kernels
    new = _folder(tmp_path / "new", profile="faults")
    with pytest.raises(ForkdiffError, match="kernel profile differs: this run faults, the earlier run perf"):
        compare_dir(new, against=old)
    same = _folder(tmp_path / "same", profile="perf")
    df = compare_dir(same, against=old)
    # every spawn row, run-vs-run included, names the profile its kernels were timed on
    assert not df.empty and set(df.loc[df["suite"] == "spawn", "profile"]) == {"perf"}
