"""compare (orchestrator/compare.py) on a stored observation set recorded from the real guests
(tests/data/small-run/: maps, faults and counts suites on both variants, small scenarios, made
by `forkdiff run` and trimmed to those scenarios; guest-elf.json holds the program headers of the
guest binaries that ran). No VM runs here: this tests the comparison and the report."""

import json
import shutil
from pathlib import Path

import pytest

from orchestrator import report
from orchestrator.compare import compare_dir
from orchestrator.verdicts import failing

DATA = Path(__file__).parents[1] / "data" / "small-run"


@pytest.fixture
def run_dir(tmp_path):
    d = tmp_path / "run"
    shutil.copytree(DATA, d)
    return d


def test_correct_pairing_matches_everything(run_dir):
    df = compare_dir(run_dir)
    assert len(df) > 100
    assert failing(df).empty, failing(df).head(10).to_string()
    # Every suite and both variants were really compared, measurement by measurement.
    seen = set(zip(df["suite"], df["variant"], strict=True))
    assert {("maps", "baseline"), ("maps", "patched"), ("faults", "baseline"),
            ("faults", "patched"), ("counts", "baseline"), ("counts", "patched")} <= seen
    assert {"child_maps", "fault_outcome", "checks_per_fork",
            "maple_node_allocated_per_fork"} <= set(df["measurement"])


def test_planted_divergence_is_named_precisely(run_dir):
    """Each kernel compared with the other variant's model: the comparison must fail, and say
    which scenario, which k and which count differ."""
    df = compare_dir(run_dir, {"baseline": "patched", "patched": "baseline"})
    bad = failing(df)
    assert not bad.empty
    assert set(bad["verdict"]) == {"mismatch"}
    faults = bad[bad["measurement"] == "fault_outcome"]
    assert not faults.empty and faults["key"].str.fullmatch(r"k=\d+").all()
    assert set(faults["scenario"]) <= {"mixed-small", "anon-touched-21"}
    checks = bad[bad["measurement"] == "checks_per_fork"]
    assert set(checks["variant"]) == {"baseline", "patched"}
    for r in checks.itertuples():
        assert r.observed != r.predicted and r.observed.isdigit() and r.predicted.isdigit()
    counts = bad[bad["measurement"] == "maple_node_allocated_per_fork"]
    assert not counts.empty
    # The kernels' own models: every one of those rows matched.
    good = compare_dir(run_dir)
    keyed = good.set_index(["suite", "variant", "scenario", "measurement", "key"])
    for r in bad.itertuples():
        assert keyed.loc[(r.suite, r.variant, r.scenario, r.measurement, r.key), "verdict"] == "match"


def test_report_from_stored_observations(run_dir):
    compare_dir(run_dir)
    res = report.render(run_dir)
    assert res["failing"] == 0 and res["total"] > 100
    html = (run_dir / "report.html").read_text()
    obs = [json.loads(x) for x in (run_dir / "observations.jsonl").read_text().splitlines()]
    # The fault strip has one cell per k the guest swept, per kernel and scenario.
    for variant in ("baseline", "patched"):
        ks = [r["values"]["k"] for r in obs if r["suite"] == "faults" and r["variant"] == variant
              and r["scenario"]["name"] == "mixed-small" and r["measurement"] in ("fault", "not_reached")]
        assert len(ks) == len(set(ks)) == max(ks)
        assert f"<b>mixed-small</b> — kernel {variant} vs model {variant}: {len(ks)} values of k, 0 mismatching" in html
    assert "PASS" in (run_dir / "report.md").read_text()
