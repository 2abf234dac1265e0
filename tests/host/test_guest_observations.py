"""Unit tests of our own code: observations.jsonl append/read/resume keys, parsing of guest
program output into measurements, and suite planning. No VM involved."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from orchestrator.results.observations import ObservationLog, read_records, record_key
from orchestrator.run.suite_parse import parse_output
from orchestrator.run.suites import RunOptions, load_scenarios, plan

ROOT = Path(__file__).resolve().parents[2]


def test_append_read_and_keys(tmp_path: Path) -> None:
    log = ObservationLog(tmp_path)
    k1 = record_key("maps", "baseline", "faults", "mixed-small", "child")
    k2 = record_key("faults", "patched", "faults", "x", "fault", 7)
    assert k1 != k2 and k2.endswith("|7")
    log.append({"key": k1, "value": 1})
    log.append({"key": k2, "value": {"nested": [1, 2]}})
    assert log.has(k1) and log.has(k2)
    again = ObservationLog(tmp_path)  # a resumed run sees the keys of the earlier one
    assert again.keys() == {k1, k2}
    recs = read_records(tmp_path / "observations.jsonl")
    assert [r["key"] for r in recs] == [k1, k2]
    assert recs[1]["value"] == {"nested": [1, 2]}
    lines = (tmp_path / "observations.jsonl").read_bytes().split(b"\n")
    assert lines[-1] == b"" and len(lines) == 3


def test_torn_line_is_skipped(tmp_path: Path, capsys) -> None:
    p = tmp_path / "observations.jsonl"
    p.write_text('{"key": "a", "value": 1}\n{"key": "b", "val')
    assert [r["key"] for r in read_records(p)] == ["a"]
    assert "not a JSON line" in capsys.readouterr().err


def test_parse_real_mapsprobe_output() -> None:
    """Output of the real mapsprobe binary on the host, parsed into measurements."""
    subprocess.run(["make", "-s", "-C", str(ROOT / "guest")], check=True, capture_output=True)
    sc = load_scenarios(["dontfork-only"])[0]
    out = subprocess.run([str(ROOT / "guest/bin/mapsprobe"), *sc.guest_args()],
                         capture_output=True, text=True, check=True).stdout
    parsed = parse_output("mapsprobe", out + "garbage line\n")
    assert parsed.bad_lines == 1
    names = [p.measurement for p in parsed.records]
    assert names == ["layout", "parent_before", "child", "child_layout", "parent_after"]
    child = parsed.records[2]
    assert child.value == child.values["map_count"] == len(
        [m for m in child.values["maps"] if m["path"] != "[vsyscall]"])


def test_parse_fault_lines() -> None:
    lines = [{"prog": "faultsweep", "event": "fault", "k": 3, "fork_result": -1, "errno": 12},
             {"prog": "faultsweep", "event": "sweep_end", "last_k": 9},
             {"prog": "forkcount", "event": "repeat", "repeat": 2}]
    parsed = parse_output("faultsweep", "\n".join(json.dumps(x) for x in lines))
    assert [(p.measurement, p.repeat, p.value) for p in parsed.records] == [
        ("fault", 3, -1), ("sweep_end", None, 9)]
    assert parsed.bad_lines == 1  # another program's line


def test_plan(tmp_path: Path) -> None:
    spawn = plan(RunOptions(suite="spawn", out=tmp_path, vmas=(21, 421), repeats=2, duration=0.5))
    assert [(j.scenario, j.repeat) for j in spawn] == [("total-21", 0), ("total-21", 1),
                                                       ("total-421", 0), ("total-421", 1)]
    assert spawn[2].args[-4:] == ("--total", "421", "--duration", "0.5")
    assert spawn[2].scenario_dict["total_vmas"] == 421
    faults = plan(RunOptions(suite="faults", out=tmp_path, count_only_above=1000))
    big = [j for j in faults if j.scenario == "anon-touched-3221"][0]
    small = [j for j in faults if j.scenario == "anon-touched-21"][0]
    assert "--count-only" in big.args and "--count-only" not in small.args
    assert small.command.startswith("/usr/local/bin/faultsweep --kmsg --max-k ")


def test_run_command_user_errors(tmp_path: Path, capsys) -> None:
    """`forkdiff run` refuses bad input with one line and exit 2, before building or booting."""
    from orchestrator.cli import main

    assert main(["run", "--suite", "maps", "--scenario", "no-such-scenario", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("forkdiff: error:") and "no-such-scenario" in err and "\n" not in err
    assert main(["run", "--suite", "spawn", "--resume"]) == 2
    assert "--resume needs --out" in capsys.readouterr().err
    assert main(["run", "--suite", "spawn", "--duration", "0", "--out", str(tmp_path)]) == 2
