"""Variant-vs-variant timing statistics (orchestrator/analysis/timing.py) on synthetic repeats."""

import math

import pandas as pd
import pytest

from orchestrator.analysis.timing import improvement_table


def _rows(data):
    return pd.DataFrame([{"variant": v, "vmas": n, "forks_per_s": x} for v, n, xs in data for x in xs])


def test_improvement_and_welch_significance():
    t = improvement_table(_rows([
        ("baseline", 21, [100.0, 101.0, 99.0]), ("patched", 21, [100.5, 99.5, 100.0]),
        ("baseline", 421, [50.0, 51.0, 49.0]), ("patched", 421, [75.0, 76.0, 74.0]),
    ]))
    by = t.set_index("vmas")
    assert by.loc[421, "improvement_pct"] == pytest.approx(50.0)
    assert bool(by.loc[421, "significant"]) is True
    assert bool(by.loc[21, "significant"]) is False
    assert by.loc[421, "improvement_ci"] > 0


def test_single_repeat_has_no_test_and_counts_missing_side_out():
    t = improvement_table(_rows([("baseline", 21, [10.0]), ("patched", 21, [12.0]),
                                 ("baseline", 121, [5.0])]))
    assert list(t["vmas"]) == [21]
    assert t.loc[0, "improvement_pct"] == pytest.approx(20.0)
    assert math.isnan(t.loc[0, "welch_p"]) and not t.loc[0, "significant"]


def test_deterministic_repeats_without_variance():
    t = improvement_table(_rows([("baseline", 21, [10.0, 10.0]), ("patched", 21, [12.0, 12.0])]))
    assert t.loc[0, "welch_p"] == 0.0 and bool(t.loc[0, "significant"])
