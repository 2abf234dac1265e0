"""A guest that crashes or hangs in the middle of a suite (for real: a kernel panic through
/proc/sysrq-trigger, BUG / WARNING / Oops, a soft lockup and a hung task through LKDTM's
provoke-crash file, a guest that resets itself with no report (sysrq b: QEMU, started with
-no-reboot, exits), a busy loop that never returns, QEMU itself stopped with SIGSTOP) costs
that one case: it is recorded as crashed / hung, a fresh guest is booted, the suite goes on
with the next case, no record is lost and no QEMU is left (the conftest fixture checks that
after every test). A fault sweep that dies at step k records k."""

from __future__ import annotations

import dataclasses
import os
import signal
from pathlib import Path

import pytest

from orchestrator.analysis.compare import compare_dir
from orchestrator.results.observations import ObservationLog, read_records
from orchestrator.run.suites import Job, RunOptions, SuiteResult, load_scenarios, plan, run_variant
from orchestrator.vm.guest import Guest


@dataclasses.dataclass(frozen=True)
class ShellJob(Job):
    """A job running a shell command instead of a guest program (test only)."""

    shell: str = ""

    @property
    def command(self) -> str:
        return self.shell


SIGSTOP_QEMU = "forkdiff-test: SIGSTOP qemu; "


@pytest.fixture
def sigstop_hook(monkeypatch: pytest.MonkeyPatch) -> None:
    """Test hook (the only stand-in here): a command starting with SIGSTOP_QEMU makes the test
    send SIGSTOP to the guest's real QEMU process, then runs the rest of the command, which
    can then never answer."""
    real_run = Guest.run

    def run(self: Guest, cmd: str, timeout: float = 60, stdin: bytes | None = None):
        if cmd.startswith(SIGSTOP_QEMU):
            assert self.proc is not None
            os.kill(self.proc.pid, signal.SIGSTOP)
            cmd = cmd[len(SIGSTOP_QEMU):]
        return real_run(self, cmd, timeout, stdin)

    monkeypatch.setattr(Guest, "run", run)


def test_crash_and_hang_mid_suite_restart_and_go_on(tmp_path: Path, sigstop_hook: None) -> None:
    scenarios = load_scenarios(["dontfork-only", "wipeonfork-only", "mixed-small"])
    opts = RunOptions(suite="maps", out=tmp_path, variants=("patched",), profile="faults",
                      scenarios=scenarios, icount=False, log=print)
    real = plan(opts)
    crash = ShellJob("panic", {"name": "panic"}, "sh", (), timeout=60,
                     shell="sh -c 'echo c > /proc/sysrq-trigger'")
    hang = ShellJob("hang", {"name": "hang"}, "sh", (), timeout=3,
                    shell="sh -c 'while :; do :; done'")  # a guest busy loop
    stopped = ShellJob("stopped", {"name": "stopped"}, "sh", (), timeout=5,
                       shell=SIGSTOP_QEMU + "echo still here")
    reset = ShellJob("reset", {"name": "reset"}, "sh", (), timeout=60,
                     shell="sh -c 'echo b > /proc/sysrq-trigger'")  # reboot: QEMU -no-reboot exits 0
    jobs = [real[0], crash, real[1], hang, stopped, reset, real[2]]
    result = SuiteResult()
    run_variant(opts, "patched", jobs, ObservationLog(tmp_path), result)

    recs = read_records(tmp_path / "observations.jsonl")
    errors = [r for r in recs if r["measurement"] == "error"]
    assert [(r["scenario"]["name"], r["values"]["kind"]) for r in errors] == [
        ("panic", "GuestCrashed"), ("hang", "GuestHung"), ("stopped", "GuestHung"),
        ("reset", "GuestLost")]
    assert "QEMU exited with status 0" in errors[3]["value"]
    assert "Kernel panic" in errors[0]["value"] or "sysrq" in errors[0]["value"].lower()
    # The console excerpt is kept in the record and shown with the verdict.
    assert "Kernel panic - not syncing" in errors[0]["values"]["console_excerpt"]
    assert "sysrq" in errors[0]["values"]["console_excerpt"].lower()
    assert all("k" not in r["values"] for r in errors)  # not sweeps: no step to name
    assert result.restarts == 4
    assert [j.scenario for j in result.lost_jobs] == ["panic", "hang", "stopped", "reset"]
    # Every real case after the crash and the hang still ran to its final record.
    for sc in scenarios:
        assert [r for r in recs if r["scenario"]["name"] == sc.name and r["measurement"] == "parent_after"]
    assert len({r["key"] for r in recs}) == len(recs)

    df = compare_dir(tmp_path)
    verdicts = dict(zip(df["scenario"] + "/" + df["measurement"], df["verdict"], strict=True))
    assert verdicts["panic/error"] == "crashed" and verdicts["hang/error"] == "hung"
    assert verdicts["stopped/error"] == "hung" and verdicts["reset/error"] == "crashed"
    panic_row = df[df["scenario"] == "panic"].iloc[0]
    assert "--- console ---" in panic_row["detail"] and "Kernel panic - not syncing" in panic_row["detail"]
    real_rows = df[~df["scenario"].isin(["panic", "hang", "stopped", "reset"])]
    assert len(real_rows) > 0 and set(real_rows["verdict"]) == {"match"}


def _provoking(job: Job, name: str, k: int, crash_type: str) -> Job:
    """The same sweep under another scenario name, told to crash the kernel through LKDTM at
    step k (faultsweep --provoke) instead of forking."""
    return dataclasses.replace(job, scenario=name, scenario_dict={**job.scenario_dict, "name": name},
                               args=(*job.args, "--provoke", f"{k}:{crash_type}"))


def test_fault_sweep_crash_records_k_and_suite_goes_on(tmp_path: Path) -> None:
    """Real crashes in the middle of real fail-nth sweeps: a BUG (oops=panic: the kernel
    dies), a WARNING (the kernel lives on; the case is still crashed and the guest replaced)
    and an Oops from a shell job. The sweeps' records name the step k they died in, read
    from the console lines faultsweep --kmsg printed; each dead sweep runs again without that
    step, so no other step goes unrecorded; the real sweep after them completes and matches
    the simulator."""
    scenario = load_scenarios(["mixed-small"])
    opts = RunOptions(suite="faults", out=tmp_path, variants=("patched",), scenarios=scenario,
                      icount=False, log=print)
    sweep = plan(opts)[0]
    assert "--kmsg" in sweep.args
    oops = ShellJob("oops", {"name": "oops"}, "sh", (), timeout=60,
                    shell="echo EXCEPTION > /sys/kernel/debug/provoke-crash/DIRECT")
    jobs = [_provoking(sweep, "bug-at-7", 7, "BUG"), _provoking(sweep, "warn-at-13", 13, "WARNING"),
            oops, sweep]
    result = SuiteResult()
    run_variant(opts, "patched", jobs, ObservationLog(tmp_path), result)

    recs = read_records(tmp_path / "observations.jsonl")
    errors = {r["scenario"]["name"]: r for r in recs if r["measurement"] == "error"}
    assert sorted(errors) == ["bug-at-7", "oops", "warn-at-13"]
    assert errors["bug-at-7"]["values"]["k"] == 7 and "k=7" in errors["bug-at-7"]["value"]
    assert errors["warn-at-13"]["values"]["k"] == 13 and "k=13" in errors["warn-at-13"]["value"]
    assert "k" not in errors["oops"]["values"]
    assert "(bug)" in errors["bug-at-7"]["value"] or "(panic)" in errors["bug-at-7"]["value"]
    assert "(warning)" in errors["warn-at-13"]["value"]
    assert "forkdiff-sweep: k=7" in errors["bug-at-7"]["values"]["console_excerpt"]
    assert "kernel BUG at" in errors["bug-at-7"]["values"]["console_excerpt"]
    assert "WARNING:" in errors["warn-at-13"]["values"]["console_excerpt"]
    for r in errors.values():
        assert r["values"]["kind"] == "GuestCrashed" and r["kernel_release"].endswith("-patched-faults")
    assert result.restarts == 3
    # Each dead sweep ran again on a fresh guest without its fatal step: every other step is
    # recorded, with the same outcome as in the sweep that never crashed.
    def outcomes(name: str) -> dict[int, tuple]:
        return {r["values"]["k"]: (r["measurement"], r["values"].get("fork_result"), r["values"].get("errno"))
                for r in recs if r["scenario"]["name"] == name and r["measurement"] in ("fault", "not_reached")}

    full = outcomes("mixed-small")
    assert len(full) > 20 and [r for r in recs if r["scenario"]["name"] == "mixed-small"
                               and r["measurement"] == "sweep_end"]
    for name, k in (("bug-at-7", 7), ("warn-at-13", 13)):
        assert outcomes(name) == {j: o for j, o in full.items() if j != k}
        again = [r for r in recs if r["scenario"]["name"] == name and r["measurement"] == "sweep_end"]
        assert len(again) == 1 and f"--skip {k} " in again[0]["command"]
    assert not [r for r in recs if r["scenario"]["name"] == "oops" and r["measurement"] != "error"]

    df = compare_dir(tmp_path)
    assert list(df[df["scenario"] == "oops"]["verdict"]) == ["crashed"]
    for name in ("bug-at-7", "warn-at-13"):
        rows = df[df["scenario"] == name]
        assert list(rows[rows["verdict"] != "match"]["verdict"]) == ["crashed"] and len(rows) > 20
    real_rows = df[df["scenario"] == "mixed-small"]
    assert len(real_rows) > 10 and set(real_rows["verdict"]) == {"match"}


def test_lockup_and_hung_task_mid_suite_are_crashed_cases(tmp_path: Path) -> None:
    """A real soft lockup and a real hung task in the middle of a suite: LKDTM spins with
    preemption off / sleeps uninterruptibly after the detector's threshold was lowered in that
    guest (kernel.watchdog_thresh=1: soft lockup after 2 s; hung_task_timeout_secs=1). Neither
    kills the kernel, but the console report makes the case `crashed` with the report's kind,
    the guest is replaced and the suite goes on. The fresh guests keep the default thresholds."""
    scenarios = load_scenarios(["dontfork-only", "wipeonfork-only", "mixed-small"])
    opts = RunOptions(suite="maps", out=tmp_path, variants=("patched",), profile="faults",
                      scenarios=scenarios, icount=False, log=print)
    real = plan(opts)
    direct = "/sys/kernel/debug/provoke-crash/DIRECT"
    # The commands never return: the console report ends them (else the timeout: hung).
    soft = ShellJob("soft-lockup", {"name": "soft-lockup"}, "sh", (), timeout=30,
                    shell=f"echo 1 > /proc/sys/kernel/watchdog_thresh && echo SOFTLOCKUP > {direct}")
    hung = ShellJob("hung-task", {"name": "hung-task"}, "sh", (), timeout=30,
                    shell=f"echo 1 > /proc/sys/kernel/hung_task_timeout_secs && echo HUNG_TASK > {direct}")
    jobs = [real[0], soft, real[1], hung, real[2]]
    result = SuiteResult()
    run_variant(opts, "patched", jobs, ObservationLog(tmp_path), result)

    recs = read_records(tmp_path / "observations.jsonl")
    errors = {r["scenario"]["name"]: r for r in recs if r["measurement"] == "error"}
    assert sorted(errors) == ["hung-task", "soft-lockup"]
    for name, culprit in (("soft-lockup", "lkdtm_SOFTLOCKUP"), ("hung-task", "lkdtm_HUNG_TASK")):
        values = errors[name]["values"]
        assert (values["kind"], values["crash"]) == ("GuestCrashed", name)
        assert f"({name})" in errors[name]["value"]
        assert culprit in values["console_excerpt"]  # the stack of the stuck task
    assert "BUG: soft lockup - CPU#0 stuck for" in errors["soft-lockup"]["value"]
    assert "blocked for more than 1 seconds" in errors["hung-task"]["value"]
    assert result.restarts == 2
    assert [j.scenario for j in result.lost_jobs] == ["soft-lockup", "hung-task"]
    for sc in scenarios:
        assert [r for r in recs if r["scenario"]["name"] == sc.name and r["measurement"] == "parent_after"]

    df = compare_dir(tmp_path)
    assert list(df[df["scenario"].isin(["soft-lockup", "hung-task"])]["verdict"]) == ["crashed", "crashed"]
    real_rows = df[~df["scenario"].isin(["soft-lockup", "hung-task"])]
    assert len(real_rows) > 0 and set(real_rows["verdict"]) == {"match"}
