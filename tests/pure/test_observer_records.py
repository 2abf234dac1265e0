"""OBSERVERS=: the knob, faultsweep's arguments, the per-fork overlap computed from the guest's
timestamps, and naming the observer a crash report names. Pure functions over records and
console text written here by hand (no guest)."""

from __future__ import annotations

import json

import pytest

from orchestrator.analysis.observer_rows import fault_detail
from orchestrator.analysis.report import _observers_of
from orchestrator.errors import ForkdiffError
from orchestrator.run import observers as obs
from orchestrator.run.suite_parse import parse_output
from orchestrator.run.suites import RunOptions, load_scenarios, plan, profile_of


def test_parse_observers():
    assert obs.parse_observers(None) == ()
    assert obs.parse_observers("none") == ()
    assert obs.parse_observers("all") == ("swapoff", "rmap", "proc")
    # OBSERVERS order whatever the order given, duplicates once
    assert obs.parse_observers("proc,swapoff proc") == ("swapoff", "proc")
    with pytest.raises(ForkdiffError, match="unknown observer ksm"):
        obs.parse_observers("rmap,ksm")
    assert obs.parse_seed(None) == 1 and obs.parse_seed("42") == 42
    with pytest.raises(ForkdiffError, match="OBSERVER_SEED"):
        obs.parse_seed("x")


def test_profile_and_sweep_args(tmp_path):
    assert profile_of("faults", ()) == "faults"
    # swap and zram are in the faults profile: observers need no kernel of their own
    assert profile_of("faults", ("proc",)) == "faults"
    assert profile_of("maps", ("proc",)) == "faults"
    sc = load_scenarios(["anon-touched-21"])[0]
    ro = RunOptions(suite="faults", out=tmp_path, scenarios=[sc], observers=("swapoff", "proc"),
                    observer_seed=7)
    assert ro.profile_used == "faults"
    args = plan(ro)[0].args
    i = args.index("--observers")
    assert args[i:i + 4] == ("--observers", "swapoff,proc", "--observer-seed", "7")
    assert "--observers" not in plan(RunOptions(suite="faults", out=tmp_path, scenarios=[sc]))[0].args


def _line(**kw) -> str:
    return json.dumps(kw)


def test_annotate_counts_overlapping_iterations():
    out = "\n".join([
        _line(prog="faultsweep", event="fault", k=1, fork_result=-1, errno=12, fork_us=[100, 200]),
        _line(prog="faultsweep", event="fault", k=2, fork_result=-1, errno=12, fork_us=[300, 310]),
        _line(prog="faultsweep", event="sweep_end", last_k=2),
        # swapoff: [50,120] overlaps k=1, [150,160] inside k=1, [250,299] overlaps none
        _line(prog="observe", event="observer", observer="swapoff", iterations=3, recorded=3,
              t_us=[50, 120, 150, 160, 250, 299]),
        # proc: [305,400] overlaps k=2 only
        _line(prog="observe", event="observer", observer="proc", iterations=1, recorded=1,
              t_us=[305, 400]),
    ])
    parsed = parse_output("faultsweep", out)
    assert parsed.bad_lines == 0  # observe's lines are accepted in faultsweep's output
    recs = obs.annotate(parsed.records)
    faults = {r.values["k"]: r.values["observers"] for r in recs if r.measurement == "fault"}
    assert faults == {1: {"swapoff": 2, "proc": 0}, 2: {"swapoff": 0, "proc": 1}}
    o = {r.repeat: r.values for r in recs if r.measurement == "observer"}
    assert "t_us" not in o["swapoff"]  # raw intervals are not kept in the records
    assert (o["swapoff"]["ks_overlapped"], o["swapoff"]["first_k"], o["swapoff"]["last_k"]) == (1, 1, 1)
    assert o["proc"]["overlapping_iterations"] == 1 and o["proc"]["forks"] == 2


def test_other_programs_do_not_take_observe_lines():
    parsed = parse_output("mapsprobe", _line(prog="observe", event="observer", observer="proc"))
    assert parsed.bad_lines == 1 and not parsed.records


def test_strip_reads_the_detail_back():
    d = "dup_mmap (maple_node, GFP_KERNEL)" + fault_detail({"observers": {"swapoff": 2, "proc": 0}})
    assert _observers_of(d) == {"swapoff": 2}
    assert _observers_of("dup_mmap (maple_node, GFP_KERNEL)") == {}
    assert fault_detail({}) == ""
