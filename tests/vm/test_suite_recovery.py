"""A guest that crashes or hangs in the middle of a suite (for real: a kernel panic through
/proc/sysrq-trigger, a command that never returns) costs that one case: it is recorded as
crashed / hung, a fresh guest is booted, the suite goes on with the next case, no record is
lost and no QEMU is left (the conftest fixture checks that after every test)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from orchestrator.compare import compare_dir
from orchestrator.observations import ObservationLog, read_records
from orchestrator.suites import Job, RunOptions, SuiteResult, load_scenarios, plan, run_variant

pytestmark = pytest.mark.vm


@dataclasses.dataclass(frozen=True)
class ShellJob(Job):
    """A job running a shell command instead of a guest program (test only)."""

    shell: str = ""

    @property
    def command(self) -> str:
        return self.shell


def test_crash_and_hang_mid_suite_restart_and_go_on(tmp_path: Path) -> None:
    scenarios = load_scenarios(["dontfork-only", "wipeonfork-only", "mixed-small"])
    opts = RunOptions(suite="maps", out=tmp_path, variants=("patched",), profile="faults",
                      scenarios=scenarios, icount=False, log=print)
    real = plan(opts)
    crash = ShellJob("panic", {"name": "panic"}, "sh", (), timeout=60,
                     shell="sh -c 'echo c > /proc/sysrq-trigger'")
    hang = ShellJob("hang", {"name": "hang"}, "sh", (), timeout=3, shell="sleep 600")
    jobs = [real[0], crash, real[1], hang, real[2]]
    result = SuiteResult()
    run_variant(opts, "patched", jobs, ObservationLog(tmp_path), result)

    recs = read_records(tmp_path / "observations.jsonl")
    errors = [r for r in recs if r["measurement"] == "error"]
    assert [(r["scenario"]["name"], r["values"]["kind"]) for r in errors] == [
        ("panic", "GuestCrashed"), ("hang", "GuestHung")]
    assert "Kernel panic" in errors[0]["value"] or "sysrq" in errors[0]["value"].lower()
    assert result.restarts == 2 and [j.scenario for j in result.lost_jobs] == ["panic", "hang"]
    # Every real case after the crash and the hang still ran to its final record.
    for sc in scenarios:
        assert [r for r in recs if r["scenario"]["name"] == sc.name and r["measurement"] == "parent_after"]
    assert len({r["key"] for r in recs}) == len(recs)

    df = compare_dir(tmp_path)
    verdicts = dict(zip(df["scenario"] + "/" + df["measurement"], df["verdict"], strict=True))
    assert verdicts["panic/error"] == "crashed" and verdicts["hang/error"] == "hung"
    real_rows = df[~df["scenario"].isin(["panic", "hang"])]
    assert len(real_rows) > 0 and set(real_rows["verdict"]) == {"match"}
