"""The suite pipeline (orchestrator.run.suites.run_on_guest) end to end on the HOST: the FAKE guest
(tests/fake_guest.py) runs the real guest programs from guest/bin on this machine's kernel instead of over SSH
in QEMU. Checks records, keys, resume and error records; the VM tests do the same on the real
variants."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from fake_guest import FakeGuest, FakeKernel

from orchestrator.results.observations import ObservationLog, read_records
from orchestrator.run.suites import (
    RunOptions,
    SuiteResult,
    load_scenarios,
    pending,
    plan,
    run_on_guest,
)
from orchestrator.suite_defs.base import GUEST_BIN
from simulator.scenario import from_dict

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module", autouse=True)
def built() -> None:
    subprocess.run(["make", "-s", "-C", str(ROOT / "guest")], check=True, capture_output=True)


def test_maps_suite_records_and_resume(tmp_path: Path) -> None:
    opts = RunOptions(suite="maps", out=tmp_path, variants=("patched",), icount=False,
                      scenarios=load_scenarios(["dontfork-only", "mixed-small"]), log=lambda m: None)
    res = SuiteResult()
    assert run_on_guest(opts, "patched", FakeGuest(), plan(opts), ObservationLog(tmp_path), res)
    recs = read_records(tmp_path / "observations.jsonl")
    assert res.errors == [] and len(recs) == res.records == 10
    assert [r["measurement"] for r in recs[:5]] == ["layout", "parent_before", "child",
                                                   "child_layout", "parent_after"]
    for r in recs:
        assert r["key"].startswith(f"maps|patched|faults|{r['scenario']['name']}|{r['measurement']}")
        assert r["kernel_release"] and r["qemu_mode"] == "host" and r["fault_settings"] is None
        assert r["command"].startswith(f"{GUEST_BIN}/mapsprobe ")
    child = [r for r in recs if r["measurement"] == "child" and r["scenario"]["name"] == "dontfork-only"][0]
    assert child["value"] == child["values"]["map_count"]
    # resume: nothing pending; running anyway writes no duplicate key
    opts.resume = True
    log = ObservationLog(tmp_path)
    assert pending(opts, "patched", plan(opts), log) == []
    assert run_on_guest(opts, "patched", FakeGuest(), plan(opts), log, SuiteResult())
    assert len(read_records(tmp_path / "observations.jsonl")) == 10


def test_failing_program_gives_error_records(tmp_path: Path) -> None:
    merged = from_dict({"name": "merges", "gap_pages": 0, "groups": [{"count": 2}]})
    opts = RunOptions(suite="maps", out=tmp_path, variants=("patched",), icount=False,
                      scenarios=[merged], log=lambda m: None)
    res = SuiteResult()
    run_on_guest(opts, "patched", FakeGuest(), plan(opts), ObservationLog(tmp_path), res)
    recs = read_records(tmp_path / "observations.jsonl")
    errors = [r for r in recs if r["measurement"] == "error"]
    assert len(errors) == 2 and len(res.errors) == 2  # the program's error line + its exit status
    assert "merged" in errors[0]["value"] and errors[1]["values"]["status"] == 3
    assert errors[0]["key"] != errors[1]["key"]


def test_spawn_suite_on_host(tmp_path: Path) -> None:
    opts = RunOptions(suite="spawn", out=tmp_path, variants=("patched",), icount=False,
                      vmas=(30, 60), duration=0.05, repeats=2, log=lambda m: None)
    res = SuiteResult()
    run_on_guest(opts, "patched", FakeGuest(), plan(opts), ObservationLog(tmp_path), res)
    spawn = [r for r in read_records(tmp_path / "observations.jsonl") if r["measurement"] == "spawn"]
    assert sorted((r["scenario"]["total_vmas"], r["repeat"]) for r in spawn) == [
        (30, 0), (30, 1), (60, 0), (60, 1)]
    assert all(r["values"]["map_count"] == r["scenario"]["total_vmas"] for r in spawn)
    # the record's value is the median of the measured loop's time slices (guest/spawn.c)
    assert all(r["value"] == r["values"]["forks_per_s_median"] > 0 for r in spawn)
    assert all(r["values"]["forks_per_s"] > 0 and r["values"]["slices"] >= 1 for r in spawn)


def test_sweep_step_is_the_last_announced_step() -> None:
    from orchestrator.run.suites import sweep_step

    console = ["[    3.100000] forkdiff-sweep: k=41", "[    3.100100] forkdiff-sweep: k=42",
               "[    3.100200] ------------[ cut here ]------------",
               "[    3.100300] kernel BUG at drivers/misc/lkdtm/bugs.c:99!"]
    assert sweep_step(console) == 42
    assert sweep_step(console[2:]) is None
    assert sweep_step([]) is None


def test_a_dead_sweep_runs_again_without_its_step_at_most_three_times() -> None:
    from orchestrator.run.suites import MAX_SKIPPED_STEPS, sweep_without_step

    opts = RunOptions(suite="faults", out=Path("/nonexistent"), scenarios=load_scenarios(["mixed-small"]))
    job = plan(opts)[0]
    again = sweep_without_step(job, 7)
    assert again is not None and again.args[:2] == ("--skip", "7") and again.args[2:] == job.args
    assert sweep_without_step(job, None) is None  # step unknown: nothing to skip
    for k in range(8, 8 + MAX_SKIPPED_STEPS - 1):
        again = sweep_without_step(again, k)
        assert again is not None
    assert again.args.count("--skip") == MAX_SKIPPED_STEPS
    assert sweep_without_step(again, 99) is None
    maps = plan(RunOptions(suite="maps", out=Path("/nonexistent"), scenarios=load_scenarios(["mixed-small"])))[0]
    assert sweep_without_step(maps, 7) is None


def test_a_given_up_sweep_runs_once_more_before_its_first_crash() -> None:
    """After MAX_SKIPPED_STEPS + 1 crashes the steps before the first crash are still wanted:
    the sweep without its skips, --max-k the step before the first crash, marked before_crash."""
    from orchestrator.run.suites import (
        MAX_SKIPPED_STEPS,
        sweep_before_first_crash,
        sweep_without_step,
    )

    opts = RunOptions(suite="faults", out=Path("/nonexistent"), scenarios=load_scenarios(["mixed-small"]))
    job = plan(opts)[0]
    assert "--max-k" in job.args and job.before_crash is None
    again = job
    for k in (24, 26, 25):  # crashes out of order: the first crash is the smallest step
        assert sweep_before_first_crash(again, 99) is None  # skips left: not given up yet
        again = sweep_without_step(again, k)
    assert again.args.count("--skip") == MAX_SKIPPED_STEPS
    last = sweep_before_first_crash(again, 27)
    assert last is not None and last.before_crash == 24 and "--skip" not in last.args
    assert last.args[last.args.index("--max-k") + 1] == "23"
    rest = list(last.args)
    del rest[rest.index("--max-k"):rest.index("--max-k") + 2]
    orig = list(job.args)
    del orig[orig.index("--max-k"):orig.index("--max-k") + 2]
    assert rest == orig and last.scenario == job.scenario and last.repeat == job.repeat
    assert sweep_before_first_crash(again, None) is None
    # that last run is not retried: a crash in it is recorded only
    assert sweep_without_step(last, 5) is None and sweep_before_first_crash(last, 5) is None
    # a crash at the first step of the sweep (or of its part): nothing before it to record
    first_step = job
    for k in (1, 2, 3):
        first_step = sweep_without_step(first_step, k)
    assert sweep_before_first_crash(first_step, 4) is None
    part = replace(again, args=("--k-from", "24", *again.args))
    assert sweep_before_first_crash(part, 27) is None


def test_records_carry_the_booted_kernels_config(tmp_path: Path) -> None:
    """The FAKE guest's kernel gets a .config file (as a BuiltKernel has): every record carries
    its hash and the options the simulator's rules read; a missing .config stops the run."""
    from orchestrator.errors import ForkdiffError
    from orchestrator.prepare.kconfig import run_record

    cfg = tmp_path / "config"
    cfg.write_text("CONFIG_MMU=y\n# CONFIG_PER_VMA_LOCK is not set\nCONFIG_NUMA=y\n")

    @dataclass
    class ConfiguredKernel(FakeKernel):
        config: Path = cfg

    guest = FakeGuest()
    guest.kernel = ConfiguredKernel()
    out = tmp_path / "out"
    opts = RunOptions(suite="maps", out=out, variants=("patched",), icount=False,
                      scenarios=load_scenarios(["dontfork-only"]), log=lambda m: None)
    assert run_on_guest(opts, "patched", guest, plan(opts), ObservationLog(out), SuiteResult())
    recs = read_records(out / "observations.jsonl")
    assert len(recs) == 5
    for r in recs:
        assert r["kernel_config"] == run_record(cfg)
        assert r["kernel_config"]["options"]["CONFIG_PER_VMA_LOCK"] == "n"
        assert r["kernel_config"]["options"]["CONFIG_NUMA"] == "y"
    cfg.unlink()
    with pytest.raises(ForkdiffError, match="config"):
        run_on_guest(opts, "patched", guest, plan(opts), ObservationLog(tmp_path / "o2"), SuiteResult())


def test_the_fake_and_the_real_guest_state_the_same_contract(tmp_path: Path) -> None:
    """orchestrator.vm.guest_api.GuestLike: what run_on_guest needs of a guest. The fake above and
    orchestrator.vm.guest.Guest (constructed, not booted) both have every member it names."""
    from orchestrator.vm.guest import Guest
    from orchestrator.vm.guest_api import GuestLike

    assert isinstance(FakeGuest(), GuestLike)
    real = Guest(FakeKernel(), None, log_dir=tmp_path)  # type: ignore[arg-type]
    assert isinstance(real, GuestLike)
    partial = type("NoCheck", (), {k: v for k, v in vars(FakeGuest).items() if k != "check"})
    assert not isinstance(partial(), GuestLike)  # the contract is checked, member by member
