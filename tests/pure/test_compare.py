"""compare (orchestrator/analysis/compare.py) on a stored observation set recorded from the real guests
(tests/data/small-run/: maps, faults and counts suites on both variants, small scenarios, made
by `forkdiff run` and trimmed to those scenarios; guest-elf.json holds the program headers of the
guest binaries that ran). No VM runs here: this tests the comparison and the report."""

import json
import shutil
from pathlib import Path

import pytest

from orchestrator.analysis import report
from orchestrator.analysis.compare import compare_dir
from orchestrator.results.verdicts import failing
from simulator import runconfig

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


# ------------------------------------------------------------------ run config and final records
# The tests below EDIT copies of the real records (dropping a record, or writing a
# kernel_config / fault_settings the kernel did not have) to make the cases compare must catch.
def _records(run_dir) -> list[dict]:
    return [json.loads(x) for x in (run_dir / "observations.jsonl").read_text().splitlines()]


def _write(run_dir, recs: list[dict]) -> None:
    (run_dir / "observations.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))


def _of(r: dict, suite: str, variant: str, scenario: str | None = None) -> bool:
    return (r["suite"] == suite and r["variant"] == variant
            and (scenario is None or r["scenario"]["name"] == scenario))


def test_small_run_records_without_kernel_config_say_what_was_assumed(run_dir):
    df = compare_dir(run_dir)
    info = df[df["measurement"] == "run_config"]
    assert set(info["verdict"]) == {"info"}
    assert set(zip(info["suite"], info["variant"], strict=True)) == {
        (s, v) for s in ("maps", "faults", "counts") for v in ("baseline", "patched")}
    assert info["detail"].str.contains("kernel config not recorded").all()
    assert info["detail"].str.contains("CONFIG_PER_VMA_LOCK=y").all()


def test_a_job_without_its_final_record_is_an_error(run_dir):
    recs = _records(run_dir)
    drop = {("faults", "patched", "mixed-small", "sweep_end"),
            ("maps", "baseline", "dontfork-only", "parent_after"),
            ("counts", "baseline", "mixed-small", "summary")}
    kept = [r for r in recs if (r["suite"], r["variant"], r["scenario"]["name"], r["measurement"])
            not in drop]
    assert len(recs) - len(kept) == 3
    _write(run_dir, kept)
    df = compare_dir(run_dir)
    bad = failing(df)
    assert set(bad["measurement"]) == {"final_record"} and set(bad["verdict"]) == {"error"}
    got = {(r.suite, r.variant, r.scenario, r.detail.split(" (")[0]) for r in bad.itertuples()}
    assert got == {
        ("faults", "patched", "mixed-small", "faultsweep ended without its final record sweep_end"),
        ("maps", "baseline", "dontfork-only", "mapsprobe ended without its final record parent_after"),
        ("counts", "baseline", "mixed-small", "forkcount ended without its final record summary")}
    # the records that are there are still compared
    assert (df[(df["suite"] == "faults") & (df["variant"] == "patched") & (df["scenario"] == "mixed-small")]
            ["measurement"] == "fault_outcome").sum() > 20


def test_a_job_that_ended_with_an_error_record_is_not_also_missing_its_final_record(run_dir):
    recs = [r for r in _records(run_dir)
            if not (_of(r, "faults", "patched", "mixed-small") and r["measurement"] == "sweep_end")]
    crash = next(r for r in recs if _of(r, "faults", "patched", "mixed-small")) | {
        "key": "faults|patched|faults|mixed-small|error|x:vm", "measurement": "error",
        "repeat": "x:vm", "value": "guest crashed", "values": {"kind": "GuestCrashed"}}
    _write(run_dir, [*recs, crash])
    bad = failing(compare_dir(run_dir))
    assert list(zip(bad["measurement"], bad["verdict"], strict=True)) == [("error", "crashed")]


def test_an_unmodelled_kernel_config_is_an_error_naming_the_option(run_dir):
    recs = _records(run_dir)
    default = {r.option: r.assumed for r in runconfig.RULES}
    thp = default | {"CONFIG_TRANSPARENT_HUGEPAGE": "y"}
    for r in recs:
        r["kernel_config"] = {"sha256": "0" * 64,
                              "options": thp if r["variant"] == "patched" else default}
    _write(run_dir, recs)
    df = compare_dir(run_dir)
    bad = failing(df)
    assert set(bad["variant"]) == {"patched"} and set(bad["verdict"]) == {"error"}
    assert set(bad["measurement"]) == {"run_config"} and set(bad["key"]) == {"CONFIG_TRANSPARENT_HUGEPAGE"}
    jobs = {(r["suite"], r["scenario"]["name"]) for r in recs if r["variant"] == "patched"}
    assert set(zip(bad["suite"], bad["scenario"], strict=True)) == jobs  # one error per job
    assert bad["detail"].str.contains("CONFIG_TRANSPARENT_HUGEPAGE=y is not modelled").all()
    assert bad["detail"].str.contains("# CONFIG_TRANSPARENT_HUGEPAGE is not set").all()
    patched = df[df["variant"] == "patched"]
    assert set(patched["measurement"]) == {"run_config"}  # no prediction for another kernel
    baseline = df[df["variant"] == "baseline"]
    assert len(baseline) > 100 and set(baseline["verdict"]) == {"match"}  # no assumption either


def test_a_page_fault_sweep_is_an_error_not_a_prediction(run_dir):
    """Page allocations counted without fail_page_alloc's stack filter on copy_page_range (records
    of an older forkdiff, or a kernel without the filter): new slab pages count too, not modelled."""
    recs = _records(run_dir)
    for r in recs:
        if _of(r, "faults", "baseline"):
            r["fault_settings"]["attrs"]["fail_page_alloc"].update({"ignore-gfp-wait": "N",
                                                                    "min-order": "0"})
    _write(run_dir, recs)
    bad = failing(compare_dir(run_dir))
    assert set(zip(bad["suite"], bad["variant"], bad["key"], strict=True)) == {
        ("faults", "baseline", "fault_settings.fail_page_alloc")}
    assert set(bad["scenario"]) == {"mixed-small", "anon-touched-21"}
    assert bad["detail"].str.contains("FAULTS=slab").all()


def test_predictions_follow_the_recorded_per_vma_lock(run_dir):
    """The patched kernel ran with CONFIG_PER_VMA_LOCK=y; records claiming n make the simulator
    leave out one vma_lock check per copied VMA, and the comparison says so."""
    recs = _records(run_dir)
    opts = {r.option: r.assumed for r in runconfig.RULES} | {"CONFIG_PER_VMA_LOCK": "n"}
    for r in recs:
        r["kernel_config"] = {"sha256": "0" * 64, "options": opts}
    _write(run_dir, recs)
    df = compare_dir(run_dir)
    checks = df[df["measurement"] == "checks_per_fork"]
    assert len(checks) == 4 and set(checks["verdict"]) == {"mismatch"}
    for r in checks.itertuples():
        sc = next(x["scenario"] for x in recs if x["scenario"]["name"] == r.scenario)
        layout = next(x for x in recs if _of(x, "faults", r.variant, r.scenario)
                      and x["measurement"] == "layout")
        dontfork = sum(g["count"] for g in sc["groups"] if g.get("advice") == "dontfork")
        assert int(r.observed) - int(r.predicted) == layout["value"] - dontfork
    # maps do not depend on it
    assert set(df[df["suite"] == "maps"]["verdict"]) == {"match"}
