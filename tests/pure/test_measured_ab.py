"""The measured A/B of spawn timings (orchestrator/analysis/spawn_model.py), on observations
recorded from real guests (tests/data/spawn-run: the perf kernels of 6.12 under -icount).

A run with PATCHES= has the tree as it is (`reference`) beside the tree + PATCHES (`patched`).
The spawn_records here are made from the recorded ones (a fake of our own making, said so): the
reference kernel's are the recorded patched kernel's, relabelled, and the patched kernel's are
the same with every forks/s scaled by a chosen slowdown, or a 0.1 % wobble (the -icount repeat
spread is 0.03-0.2 %). What is tested is the analysis: the patched rows are predicted from the
reference kernel's measurement, their band is the measurement's and does not depend on which
VMA counts the run has, and a 2 % slowdown is a mismatch at every count."""

from __future__ import annotations

import copy

import pytest

from orchestrator.analysis.compare import KS, compare_records
from orchestrator.analysis.spawn_model import SAME_WORK_BAND_PCT


def _three_kernels(spawn_records: list[dict], factor: float, counts: set[int] | None = None) -> list[dict]:
    """baseline as recorded; reference = the recorded patched kernel; patched = reference with
    forks/s x factor; only the seed's counts in `counts` (calibration layouts always)."""
    def keep(r: dict) -> bool:
        sc = r["scenario"]
        return counts is None or sc.get("calibration") or sc.get("total_vmas") in counts

    out = [r for r in spawn_records if r["variant"] == "baseline" and keep(r)]
    for r in spawn_records:
        if r["variant"] != "patched" or not keep(r):
            continue
        ref = copy.deepcopy(r)
        ref["variant"] = "reference"
        out.append(ref)
        new = copy.deepcopy(r)
        if new["measurement"] == "spawn":
            new["value"] *= factor
            new["values"]["forks_per_s"] *= factor
        out.append(new)
    return out


def _rows(df, variant: str):
    return df[(df["suite"] == "spawn") & (df["axis"] == KS) & (df["variant"] == variant)
              & (df["measurement"] == "forks_per_s")]


def test_patched_is_predicted_from_the_reference_kernel_and_a_wobble_passes(spawn_records, spawn_predictor):
    df, _, cost = compare_records(_three_kernels(spawn_records, 0.999), predictor=spawn_predictor)
    assert cost["anchors"] == {"reference": "baseline", "patched": "reference"}
    patched = _rows(df, "patched")
    assert len(patched) == 8 and (patched["verdict"] == "match").all()
    assert set(patched["band"]) == {f"±{SAME_WORK_BAND_PCT:.2f}% measurement (-icount repeat spread + margin)"}
    assert patched["rule"].str.contains("measured A/B").all()
    for e in cost["errors"]:
        if e["variant"] == "patched":
            assert e["anchor"] == "reference" and e["error_pct"] == pytest.approx(100 / 0.999 - 100)
    # the reference kernel is predicted from the baseline by the work model, its band the model's
    ref = _rows(df, "reference")
    assert len(ref) == 8 and ref["band"].str.contains("work model").all()


@pytest.mark.parametrize("counts", [None, {421}, {121, 6421}, {21, 121}])
def test_a_2_percent_slowdown_is_a_mismatch_at_every_count_whatever_vmas(spawn_records, spawn_predictor, counts):
    df, _, _ = compare_records(_three_kernels(spawn_records, 0.98, counts), predictor=spawn_predictor)
    patched = _rows(df, "patched")
    assert len(patched) == (8 if counts is None else len(counts))
    assert (patched["verdict"] == "mismatch").all(), patched[["scenario", "detail"]]
    # the same band for one count as for all of them
    assert set(patched["band"]) == {f"±{SAME_WORK_BAND_PCT:.2f}% measurement (-icount repeat spread + margin)"}


def test_without_a_reference_kernel_the_patched_kernel_is_predicted_from_the_baseline(spawn_records, spawn_predictor):
    df, _, cost = compare_records(spawn_records, predictor=spawn_predictor)
    assert cost["anchors"] == {"patched": "baseline"}
    assert _rows(df, "patched")["band"].str.contains("work model").all()
