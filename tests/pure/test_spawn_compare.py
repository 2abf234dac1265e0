"""The spawn suite's comparison on a stored observation set recorded from real guests
(tests/data/spawn-run: `forkdiff vm-test SUITES=spawn` on the perf kernels under -icount,
the seed's counts up to 6,421 VMAs and the 11 calibration layouts on the baseline kernel).
No VM here: what is tested is the work model's fit and verdicts on real measurements."""

from __future__ import annotations

import copy

import pytest

from orchestrator.analysis.compare import KS, VV, compare_records


def _spawn(df, axis: str):
    # the forks/s rows (spawn_records made before the kernel config was recorded also give one
    # run_config info row per kernel: what was assumed)
    return df[(df["suite"] == "spawn") & (df["axis"] == axis) & (df["measurement"] != "run_config")]


def test_fitted_on_the_baseline_only_and_the_patched_kernel_matches(spawn_records, spawn_predictor):
    df, timing, cost = compare_records(spawn_records, predictor=spawn_predictor)
    fo = cost["model"]["fitted_on"]
    assert fo["variant"] == "baseline" and fo["model"] == "baseline"
    assert "spawn" in fo["layouts"] and len(fo["layouts"]) == 12
    assert all(p["layout"] for p in cost["model"]["points"])
    ks = _spawn(df, KS)
    assert len(ks) == 8 and set(ks["variant"]) == {"patched"}
    assert (ks["verdict"] == "match").all(), ks[["scenario", "observed", "predicted", "detail"]]
    assert cost["model"]["condition_number"] < 100 and cost["model"]["lolo_not_identified"] == []
    # the band comes from the calibration: its largest leave-one-layout-out error + margin
    lolo = max(abs(p["lolo_error_pct"]) for p in cost["model"]["points"])
    assert cost["tolerance_pct"] == pytest.approx(lolo + 1.0)
    vv = _spawn(df, VV)
    assert (vv["verdict"] == "match").all() and len(vv) == 8  # patched faster at every count
    assert set(timing["test"]) == {"one -icount run (differs if > 1%)"}


def test_patched_measurements_do_not_move_the_prediction(spawn_records, spawn_predictor):
    """The patched kernel's forks/s made 20% lower: same predictions, mismatches everywhere."""
    slow = copy.deepcopy(spawn_records)
    for r in slow:
        if r["variant"] == "patched" and r["measurement"] == "spawn":
            r["value"] *= 0.8
            r["values"]["forks_per_s"] *= 0.8
    df0, _, cost0 = compare_records(spawn_records, predictor=spawn_predictor)
    df1, _, cost1 = compare_records(slow, predictor=spawn_predictor)
    assert cost1["model"]["coef"] == cost0["model"]["coef"]
    assert [e["predicted"] for e in cost1["errors"]] == [e["predicted"] for e in cost0["errors"]]
    assert (_spawn(df1, KS)["verdict"] == "mismatch").all()


def test_the_other_variants_model_is_a_mismatch(spawn_records, spawn_predictor):
    """The patched kernel compared with the baseline's dup_mmap model: the prediction is the
    baseline's own rate, far slower than the patched kernel above a few VMAs."""
    df, _, _ = compare_records(spawn_records, models={"patched": "baseline"}, predictor=spawn_predictor)
    ks = _spawn(df, KS).set_index("scenario")
    for n in (421, 1621, 6421):
        assert ks.loc[f"total-{n}", "verdict"] == "mismatch"


def test_without_calibration_layouts_there_is_no_band_and_no_verdict(spawn_records, spawn_predictor):
    """Only the seed's layout measured on the baseline (a run without the calibration jobs):
    no layout can be held out, so the rows are informational."""
    seed_only = [r for r in spawn_records if not r["scenario"].get("calibration")]
    df, _, cost = compare_records(seed_only, predictor=spawn_predictor)
    assert cost["tolerance_pct"] != cost["tolerance_pct"]  # NaN: no validated band
    assert (_spawn(df, KS)["verdict"] == "info").all()


def test_one_kernel_fits_on_its_calibration_layouts_and_predicts_the_seed_layout(spawn_records, spawn_predictor):
    """A run of one kernel (7.x: only the patched variant): here the baseline's spawn_records alone
    (a real kernel, real measurements). The model is fitted on its calibration layouts, the
    seed's layout held out, and predicts the seed layout's forks/s from them: changing the
    seed measurements moves no prediction, and the rows say what the model was fitted on."""
    one = [r for r in spawn_records if r["variant"] == "baseline"]
    df, timing, cost = compare_records(one, predictor=spawn_predictor)
    fo = cost["model"]["fitted_on"]
    assert fo["variant"] == "baseline" and "spawn" not in fo["layouts"] and len(fo["layouts"]) == 11
    assert cost["predicts"] == "baseline"
    assert {e["layout"] for e in cost["errors"]} == {"spawn"} and len(cost["errors"]) == 8
    assert all("held out" in e["how"] for e in cost["errors"])
    assert timing.empty  # nothing to compare variant against variant
    ks = _spawn(df, KS)
    assert len(ks) == 8 and set(ks["verdict"]) <= {"match", "mismatch"}
    moved = copy.deepcopy(one)
    for r in moved:
        if r["measurement"] == "spawn" and not r["scenario"].get("calibration"):
            r["value"] *= 0.7
            r["values"]["forks_per_s"] *= 0.7
    _, _, cost1 = compare_records(moved, predictor=spawn_predictor)
    assert [e["predicted"] for e in cost1["errors"]] == [e["predicted"] for e in cost["errors"]]
