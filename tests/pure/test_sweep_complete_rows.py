"""The sweep_complete row (orchestrator/analysis/rules.py sweep_complete_rows): a sweep that
--max-k stopped before a k the fork does not reach is an error, except the run of a given-up
sweep stopped before its first crash (values before_crash), whose crashes are error rows of
their own. ObservedJob is built by hand here: no guest, no kernel."""

from orchestrator.analysis.compare_jobs import ObservedJob
from orchestrator.analysis.rules import sweep_complete_rows


def _job(values: dict) -> tuple[ObservedJob, dict]:
    end = {"measurement": "sweep_end", "values": values}
    job = ObservedJob("faults", "patched", "faults", {"name": "anon-touched-21"}, "faultsweep",
                      "faultsweep", [end])
    return job, job.one("sweep_end")


def test_a_complete_sweep_has_no_row() -> None:
    job, end = _job({"complete": True, "last_k": 90})
    assert sweep_complete_rows(job, "6.12", end) == []
    assert sweep_complete_rows(job, "6.12", None) == []


def test_a_sweep_stopped_by_max_k_is_an_error() -> None:
    job, end = _job({"complete": False, "last_k": 40})
    [row] = sweep_complete_rows(job, "6.12", end)
    assert row["verdict"] == "error" and "stopped it at 40" in row["detail"]


def test_the_run_before_the_first_crash_is_skipped_and_says_why() -> None:
    job, end = _job({"complete": False, "last_k": 23, "before_crash": 24})
    [row] = sweep_complete_rows(job, "6.12", end)
    assert row["verdict"] == "skipped"
    assert "died at k=24" in row["detail"] and "stopped at k=23" in row["detail"]
