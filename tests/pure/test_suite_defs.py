"""The suite objects (orchestrator/suite_defs): each names things that exist (its guest program's
source, its kernel profile, its default scenarios, the comparison and kernel-only rules it names),
and what the run, the shards and the comparison read of a suite comes from its object."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from orchestrator import resources
from orchestrator.analysis import compare, kernel_only, rules
from orchestrator.errors import ForkdiffError
from orchestrator.run import shards
from orchestrator.run.suites import RunOptions, plan, profile_of
from orchestrator.suite_defs import NAMES, REGISTRY, get
from orchestrator.suite_defs.base import Suite, load_scenarios

ROOT = resources.checkout_root()


@pytest.mark.parametrize("name", NAMES)
def test_suite_names_what_exists(name: str) -> None:
    s = get(name)
    assert isinstance(s, Suite) and s.name == name
    assert (resources.data_dir("guest") / f"{s.program}.c").is_file()
    assert (resources.data_dir("kconfig") / f"{s.profile}.config").is_file()
    assert [sc.name for sc in load_scenarios(s.scenarios)] == list(s.scenarios)
    for module, attr in ((rules, s.comparer), (kernel_only, s.kernel_only)):
        if attr is not None:
            fn = getattr(module, attr)
            assert list(inspect.signature(fn).parameters)[:2] == ["job", "model"]


def test_default_order_and_unknown_suite() -> None:
    assert NAMES == ("maps", "faults", "counts", "spawn")  # vm-test's default SUITES=, in run order
    with pytest.raises(ForkdiffError, match="unknown suite 'bogus'") as err:
        get("bogus")
    assert err.value.next_step == "use one of: maps, faults, counts, spawn"


def test_comparer_of_follows_the_suite_object() -> None:
    assert compare.comparer_of("maps") is rules.compare_maps
    assert compare.comparer_of("faults") is rules.compare_faults
    assert compare.comparer_of("counts") is rules.compare_counts
    assert compare.comparer_of("spawn") is None  # timings: spawn_rows, not a per-job rule
    assert compare.comparer_of("bogus") is None


def test_profiles() -> None:
    # one kernel per variant by default: every suite boots the faults profile
    assert {n: profile_of(n) for n in NAMES} == {"maps": "faults", "faults": "faults",
                                                  "counts": "faults", "spawn": "faults"}
    # observers run on the faults kernels (kconfig/faults.config has their swap and zram)
    assert profile_of("faults", ("rmap",)) == "faults"
    # PERF_KERNELS=1 moves spawn alone; DEBUG_VM=1 the exact suites alone (not spawn)
    assert {n: profile_of(n, perf=True) for n in NAMES} == {"maps": "faults", "faults": "faults",
                                                             "counts": "faults", "spawn": "perf"}
    assert {n: profile_of(n, debug_vm=True) for n in NAMES} == {"maps": "debug", "faults": "debug",
                                                                 "counts": "debug", "spawn": "faults"}
    assert profile_of("faults", ("rmap",), debug_vm=True) == "debug"
    assert RunOptions(suite="spawn", out=Path("x"), perf_kernels=True).profile_used == "perf"
    assert get("spawn").fresh_guest and not get("maps").fresh_guest


def test_plan_programs_and_final_records(tmp_path) -> None:
    """Every job a suite plans runs its program; the run's final record is the suite's, or the
    leak scan for a faults suite with kmemleak."""
    for name in NAMES:
        opts = RunOptions(suite=name, out=tmp_path, vmas=(21,))
        jobs = plan(opts)
        assert jobs and {j.program for j in jobs} == {get(name).program}
        assert opts.final == get(name).final
        assert all(shards.estimate(opts, j) > 0 for j in jobs)
    assert RunOptions(suite="faults", out=tmp_path, kmemleak=True).final == "kmemleak"
    assert RunOptions(suite="maps", out=tmp_path, kmemleak=True).final == "parent_after"


def test_a_new_suite_is_one_object(tmp_path, monkeypatch) -> None:
    """A suite added to the registry is planned, profiled and estimated from its object alone."""

    class Echo(Suite):
        name = "echo"
        program = "mapsprobe"
        profile = "perf"
        final = "parent_after"
        scenarios = ("mixed-small",)

        def job_args(self, opts, layout_args, n):
            return ("--echo", *layout_args), 7.0

        def estimate(self, opts, job, n):
            return 0.5

    monkeypatch.setitem(REGISTRY, "echo", Echo())
    opts = RunOptions(suite="echo", out=tmp_path)
    (job,) = plan(opts)
    assert job.args[0] == "--echo" and job.timeout == 7.0 and job.scenario == "mixed-small"
    assert opts.profile_used == "perf" and opts.final == "parent_after" and not opts.scans_leaks
    assert shards.estimate(opts, job) == 0.5
    assert compare.comparer_of("echo") is None
