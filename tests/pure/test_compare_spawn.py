"""The spawn branch of compare (orchestrator/analysis/compare.py: spawn_frame, timing_rows, and the work
model of orchestrator/analysis/spawn_model.py)
on a stored spawn run recorded from real guests (tests/data/small-spawn/: `forkdiff run --suite
spawn --vmas 21,421,3221 --repeats 2 --duration 1` on the perf kernels of both variants under
-icount; guest-elf.json holds the program headers of the spawn binary that ran). No VM runs
here. The planted changes edit the recorded rates in memory, never the stored file."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import pytest

from orchestrator.analysis.compare import (
    ELF_FILE,
    KS,
    VV,
    Predictor,
    compare_dir,
    group_jobs,
    load_elves,
    spawn_frame,
    spawn_work,
    timing_rows,
)
from orchestrator.analysis.spawn_model import work_model
from orchestrator.analysis.timing import improvement_table
from orchestrator.results.observations import read_records

DATA = Path(__file__).parents[1] / "data" / "small-spawn"
VMAS = (21, 421, 3221)


@pytest.fixture(scope="module")
def recorded() -> list[dict]:
    return read_records(DATA / "observations.jsonl")


@pytest.fixture(scope="module")
def predictor() -> Predictor:
    """One predictor for the module: the simulator's op counts per (variant, VMA count) do not
    depend on the recorded rates, so the planted variants below reuse them."""
    return Predictor(load_elves(DATA / ELF_FILE))


def rates(records: list[dict]) -> dict[tuple[str, int], list[float]]:
    """forks/s per (variant, VMA count) read straight from the spawn records."""
    out: dict[tuple[str, int], list[float]] = {}
    for r in records:
        if r["measurement"] == "spawn":
            out.setdefault((r["variant"], r["scenario"]["total_vmas"]), []).append(r["value"])
    return out


def planted(records: list[dict], variant: str, vmas: int, factors: list[float]) -> list[dict]:
    """A copy of the records with the rates of (variant, vmas) multiplied, repeat by repeat."""
    out = copy.deepcopy(records)
    spawn = [r for r in out if r["measurement"] == "spawn" and r["variant"] == variant
             and r["scenario"]["total_vmas"] == vmas]
    assert len(spawn) == len(factors)
    for r, f in zip(spawn, factors, strict=True):
        r["value"] *= f
        r["values"]["forks_per_s"] *= f
    return out


def analyse(records: list[dict], predictor: Predictor):
    jobs = group_jobs(records)
    frame = spawn_frame([j for j in jobs if j.suite == "spawn"])
    timing = improvement_table(frame[["variant", "vmas", "forks_per_s"]])
    cost = work_model(frame, spawn_work(predictor), {})
    return frame, timing, cost, timing_rows(timing, cost)


def vv_rows(rows: list[dict]) -> dict[int, dict]:
    return {int(r["key"].removeprefix("vmas=")): r for r in rows if r["axis"] == VV}


def test_recorded_data_is_a_real_spawn_run(recorded):
    spawn = [r for r in recorded if r["measurement"] == "spawn"]
    assert len(spawn) == len(VMAS) * 2 * 2
    for r in spawn:
        assert r["kernel_release"].endswith(f"-forkdiff-{r['variant']}-perf")
        assert r["icount"] is True and r["values"]["fork_failures"] == 0
        assert r["values"]["map_count"] == r["scenario"]["total_vmas"]
        assert r["value"] == pytest.approx(r["values"]["forks"] / r["values"]["seconds"], rel=1e-3)


def test_spawn_frame_has_one_row_per_measurement(recorded):
    frame = spawn_frame(group_jobs(recorded))
    assert list(frame.columns) == ["variant", "vmas", "forks_per_s", "job", "icount"]
    assert frame["icount"].all()  # recorded under -icount
    want = rates(recorded)
    got: dict[tuple[str, int], list[float]] = {}
    for r in frame.itertuples():
        got.setdefault((r.variant, int(r.vmas)), []).append(r.forks_per_s)
        assert r.job.suite == "spawn" and r.job.variant == r.variant
    assert {k: sorted(v) for k, v in got.items()} == {k: sorted(v) for k, v in want.items()}
    assert spawn_frame([]).empty


def test_recorded_run_passes_and_shows_the_improvement(recorded, predictor):
    _, timing, _, rows = analyse(recorded, predictor)
    vv = vv_rows(rows)
    assert sorted(vv) == list(VMAS)
    want_keys = {"axis", "suite", "variant", "model", "profile", "scenario", "measurement", "key",
                 "observed", "predicted", "verdict", "rule", "detail"}
    for n, r in vv.items():
        assert set(r) == want_keys
        assert (r["suite"], r["variant"], r["scenario"], r["measurement"]) == (
            "spawn", "both", f"total-{n}", "improvement_pct")
        assert r["verdict"] == "match", r
    # The improvement's sign is the sign of the difference of the recorded mean rates: the
    # patched kernel forks faster here, more so with more VMAs (the seed's shape).
    raw = rates(recorded)
    mean = {k: sum(v) / len(v) for k, v in raw.items()}
    by = timing.set_index("vmas")
    for n in VMAS:
        faster = mean[("patched", n)] > mean[("baseline", n)]
        assert faster and by.loc[n, "improvement_pct"] > 0
        assert not vv[n]["observed"].startswith("-")
        assert bool(by.loc[n, "significant"]) and "significantly faster" in vv[n]["detail"]
    assert by.loc[21, "improvement_pct"] < by.loc[421, "improvement_pct"] < by.loc[3221, "improvement_pct"]


@pytest.mark.parametrize("vmas", VMAS)
def test_planted_slowdown_is_a_mismatch_at_that_count_only(recorded, predictor, vmas):
    """The patched kernel's rates at one VMA count set to 70% and 69% of the baseline's: that
    row, and no other, is a mismatch."""
    base = rates(recorded)[("baseline", vmas)]
    patched = rates(recorded)[("patched", vmas)]
    factors = [0.70 * base[0] / patched[0], 0.69 * base[1] / patched[1]]
    _, timing, _, rows = analyse(planted(recorded, "patched", vmas, factors), predictor)
    vv = vv_rows(rows)
    assert vv[vmas]["verdict"] == "mismatch"
    assert vv[vmas]["observed"].startswith("-") and "significantly slower" in vv[vmas]["detail"]
    assert timing.set_index("vmas").loc[vmas, "improvement_pct"] == pytest.approx(-30.5, abs=0.1)
    assert {n for n, r in vv.items() if r["verdict"] != "match"} == {vmas}


def test_slowdown_within_noise_is_not_a_mismatch(recorded, predictor):
    """Slower on average but not significantly (one repeat faster, one slower): no mismatch."""
    base = rates(recorded)[("baseline", 421)]
    patched = rates(recorded)[("patched", 421)]
    factors = [1.10 * base[0] / patched[0], 0.80 * base[1] / patched[1]]
    _, timing, _, rows = analyse(planted(recorded, "patched", 421, factors), predictor)
    row = timing.set_index("vmas").loc[421]
    assert row["improvement_pct"] < 0 and not bool(row["significant"])
    assert vv_rows(rows)[421]["verdict"] == "match"
    assert "no significant difference" in vv_rows(rows)[421]["detail"]


def test_work_model_is_fitted_on_the_baseline_only(recorded, predictor):
    """This run has no calibration layouts (one layout: nothing to hold out, so no validated
    band): its kernel-vs-simulator rows are informational; the fit still uses the baseline's
    points only (tests/pure/test_work_model.py checks the model on a run with calibration)."""
    _, _, cost, rows = analyse(recorded, predictor)
    assert cost is not None and cost["predicts"] == "patched"
    assert cost["model"]["fitted_on"]["variant"] == "baseline"
    assert cost["model"]["fitted_on"]["vmas"] == list(VMAS)
    raw = rates(recorded)
    assert [e["vmas"] for e in cost["errors"]] == list(VMAS)
    for e in cost["errors"]:
        observed = sum(raw[("patched", e["vmas"])]) / 2
        assert e["observed"] == pytest.approx(observed)
        assert e["error_pct"] == pytest.approx((e["predicted"] / observed - 1) * 100)
    ks = [r for r in rows if r["axis"] == KS]
    assert [r["key"] for r in ks] == [f"vmas={n}" for n in VMAS]
    assert {r["verdict"] for r in ks} == {"info"}
    # The patched rates halved: the same model (nothing of them enters the fit).
    _, _, halved, _ = analyse(planted(recorded, "patched", 421, [0.5, 0.5]), predictor)
    same = {k: v for k, v in cost["model"].items() if k != "band_pct"}  # NaN: no band
    assert {k: v for k, v in halved["model"].items() if k != "band_pct"} == same
    e_before = {e["vmas"]: e for e in cost["errors"]}
    e_after = {e["vmas"]: e for e in halved["errors"]}
    assert e_after[421]["predicted"] == pytest.approx(e_before[421]["predicted"])
    assert e_after[421]["observed"] == pytest.approx(e_before[421]["observed"] / 2)


def test_work_model_needs_more_than_one_baseline_point(recorded, predictor):
    only = [r for r in recorded if r["variant"] == "patched" or r["scenario"]["total_vmas"] == 21]
    frame = spawn_frame(group_jobs(only))
    assert work_model(frame, spawn_work(predictor), {}) is None
    rows = timing_rows(improvement_table(frame[["variant", "vmas", "forks_per_s"]]), None)
    assert [r["axis"] for r in rows] == [VV]  # 21 only, and no model rows


def test_compare_dir_writes_the_timing_outputs(tmp_path):
    run = tmp_path / "run"
    shutil.copytree(DATA, run)
    df = compare_dir(run)
    spawn = df[df["suite"] == "spawn"]
    assert len(spawn[spawn["axis"] == VV]) == len(VMAS)
    assert len(spawn[(spawn["axis"] == KS) & (spawn["measurement"] == "forks_per_s")]) == len(VMAS)
    # recorded before records carried the kernel config: one row per kernel says what was assumed
    assumed = spawn[spawn["measurement"] == "run_config"]
    assert sorted(assumed["variant"]) == ["baseline", "patched"] and set(assumed["verdict"]) == {"info"}
    assert set(spawn["verdict"]) == {"match", "info"}
    assert (run / "timing.csv").read_text().splitlines()[0].startswith("vmas,baseline_forks_per_s")
    cost = json.loads((run / "cost_model.json").read_text())
    assert cost["model"]["fitted_on"]["variant"] == "baseline"


def test_report_shows_the_recorded_rates_beside_the_seed(tmp_path, recorded):
    from orchestrator.analysis import report

    run = tmp_path / "run"
    shutil.copytree(DATA, run)
    compare_dir(run)
    res = report.render(run)
    assert res["failing"] == 0
    md = (run / "report.md").read_text()
    raw = rates(recorded)
    section = md.split("## fork() throughput beside the seed thread's table")[1].split("\n## ")[0]
    table = {int(cells[0]): cells for cells in
             ([c.strip() for c in ln.split("|")[1:-1]] for ln in section.splitlines()
              if ln.startswith("| ") and ln.split("|")[1].strip().isdigit())}
    assert len(table) == 11  # the seed's VMA counts
    for n in VMAS:  # our columns: baseline, patched forks/s (means of the recorded repeats)
        base, patched = (sum(raw[(v, n)]) / 2 for v in ("baseline", "patched"))
        assert table[n][4:6] == [f"{base:,.1f}", f"{patched:,.1f}"], table[n]
    assert table[121][4:] == ["–"] * 5  # a seed count this run did not measure
    assert (run / "plots" / "forks_per_s.png").stat().st_size > 0
    assert (run / "plots" / "improvement.png").stat().st_size > 0
