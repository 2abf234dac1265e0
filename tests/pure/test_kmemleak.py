"""Unit tests of our kmemleak plumbing, without a VM: the report parser on a real report (the
first two objects of /sys/kernel/debug/kmemleak from the patched faults kernel with
tests/planted/leak-anon-vma-on-chain-failure.patch after an anon-touched-21 sweep, stored in
tests/data/), the verdict rows, the run options kmemleak implies, and Guest.check(tolerate)
on a console log file we write ourselves (a FAKE console: no QEMU). The real thing runs in
tests/vm/test_kmemleak_guest.py."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from orchestrator.analysis.compare import ObservedJob, _kmemleak_rows
from orchestrator.results.observations import ObservationLog, record_key
from orchestrator.run import faultsetup, kmemleak
from orchestrator.run.suites import RunOptions, load_scenarios, pending, plan
from orchestrator.vm.guest import ConsoleWatcher, Guest, GuestCrashed

REPORT = (Path(__file__).resolve().parents[1] / "data" / "kmemleak-anon-vma-report.txt").read_text()


def test_parse_report_reads_every_object() -> None:
    objs = kmemleak.parse_report(REPORT)
    assert [o["address"] for o in objs] == ["0xffff888002f370d0", "0xffff888002f37bc8"]
    assert all(o["size"] == 96 and o["comm"] == "faultsweep" and o["pid"] == 92 for o in objs)
    assert objs[0]["backtrace"][:3] == ["kmem_cache_alloc_noprof+0x130/0x230", "anon_vma_fork+0x49/0x120",
                                        "dup_mmap+0x4ef/0x6c0"]
    assert len(objs[0]["backtrace"]) == 8  # the hex dump lines are not frames
    assert kmemleak.parse_report("") == []


def test_summary_groups_by_site_without_the_allocator_frames() -> None:
    text = kmemleak.summary(kmemleak.parse_report(REPORT))
    assert text == "2 x 96 bytes from anon_vma_fork+0x49/0x120 <- dup_mmap+0x4ef/0x6c0 <- copy_process+0x122b/0x12c0"


def test_scan_command_scans_twice_min_age_apart_then_clears() -> None:
    cmd = kmemleak.scan_command()
    assert cmd.index("echo scan >") < cmd.index(f"sleep {kmemleak.MIN_AGE_S}") < cmd.rindex("echo scan >")
    assert cmd.index("cat /sys/kernel/debug/kmemleak") < cmd.index("echo clear") < cmd.index(kmemleak.MARKER)


def _job(records: list[dict]) -> ObservedJob:
    return ObservedJob("faults", "patched", "faults", {"name": "anon-touched-21"}, "faultsweep", "", records)


def test_a_report_is_a_crashed_row_with_the_report_and_none_is_a_match() -> None:
    objs = kmemleak.parse_report(REPORT)
    found = kmemleak.Scan(report=REPORT, objects=objs)
    [row] = _kmemleak_rows(_job([{"measurement": "kmemleak", "value": 2, "values": found.values()}]), "patched")
    assert row["verdict"] == "crashed" and row["measurement"] == "kmemleak"
    assert row["observed"] == "2 unreferenced objects" and "unreferenced object 0xffff888002f370d0" in row["detail"]
    clean = kmemleak.Scan(report="")
    [row] = _kmemleak_rows(_job([{"measurement": "kmemleak", "value": 0, "values": clean.values()}]), "patched")
    assert row["verdict"] == "match" and row["observed"] == row["predicted"] == "no kmemleak report"
    assert _kmemleak_rows(_job([{"measurement": "check_count", "value": 92, "values": {}}]), "patched") == []


def test_kmemleak_options_filter_fork_caches_and_end_a_sweep_with_the_scan(tmp_path: Path) -> None:
    sc = load_scenarios(["anon-touched-21"])
    on = RunOptions(suite="faults", out=tmp_path, scenarios=sc, kmemleak=True, resume=True)
    off = RunOptions(suite="faults", out=tmp_path, scenarios=sc, resume=True)
    assert on.fault_options.cache_filter == faultsetup.FORK_CACHES and off.fault_options.cache_filter == ()
    assert RunOptions(suite="maps", out=tmp_path, kmemleak=True).scans_leaks is False
    # resume: with kmemleak, a sweep whose sweep_end is recorded but not its scan is pending
    log = ObservationLog(tmp_path)
    log.append({"key": record_key("faults", "patched", "faults", "anon-touched-21", "sweep_end")})
    assert pending(off, "patched", plan(off), log) == []
    assert [j.scenario for j in pending(on, "patched", plan(on), log)] == ["anon-touched-21"]
    log.append({"key": record_key("faults", "patched", "faults", "anon-touched-21", "kmemleak")})
    assert pending(on, "patched", plan(on), ObservationLog(tmp_path)) == []


def _guest_with_console(tmp_path: Path, lines: list[str]) -> Guest:
    g = Guest(SimpleNamespace(variant="patched", profile="faults"), log_dir=tmp_path)  # type: ignore[arg-type]
    g.console_log.write_text("".join(f"{line}\n" for line in lines))
    g.watcher = ConsoleWatcher(g.console_log)
    return g


def test_check_lets_a_tolerated_report_pass_once_and_still_raises_on_others(tmp_path: Path) -> None:
    g = _guest_with_console(tmp_path, ["[   30.1] kmemleak: 16 new suspected memory leaks (see /sys/kernel/debug/kmemleak)"])
    g.check(kmemleak.TOLERATE)
    assert [m.kind for m in g.tolerated] == ["kmemleak"]
    g.check()  # acknowledged: nothing left to raise
    with open(g.console_log, "a") as fh:
        fh.write("[   31.0] kmemleak: 2 new suspected memory leaks (see /sys/kernel/debug/kmemleak)\n")
    with pytest.raises(GuestCrashed, match="kmemleak"):
        g.check()  # outside a scan, the same line is a crash report as before
    g.watcher.acknowledge()
    with open(g.console_log, "a") as fh:
        fh.write("[   32.0] Kernel panic - not syncing: Fatal exception\n")
    with pytest.raises(GuestCrashed, match="panic"):
        g.check(frozenset({"panic"}))  # a fatal report is never tolerated


def test_kmemleak_knob_reaches_the_vm_test_options(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """KMEMLEAK=1 (make vm-test exports it) and --kmemleak; the conductor's run is replaced by a FAKE
    that only keeps the options it is given."""
    import argparse

    from orchestrator.commands import vmtest

    seen = []
    monkeypatch.setattr(vmtest, "run", lambda opts: seen.append(opts) or 0)
    parser = argparse.ArgumentParser()
    vmtest.register(parser.add_subparsers())
    for env, argv, want in (("1", [], True), ("", [], False), ("", ["--kmemleak"], True)):
        monkeypatch.setenv("KMEMLEAK", env)
        args = parser.parse_args(["vm-test", "--out", str(tmp_path), *argv])
        assert args.func(args) == 0
        assert seen[-1].kmemleak is want
