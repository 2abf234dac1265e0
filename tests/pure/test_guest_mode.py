"""Which guests run under -icount and which under KVM (orchestrator.run.suites.resolve_icount),
with a fake KVM probe: this machine's KVM does not work, so the KVM branch can only be tested
with a fake here. A counting fake also shows the probe is asked only when the answer matters."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.errors import ForkdiffError
from orchestrator.run.suites import RunOptions, plan, resolve_icount
from orchestrator.suite_defs.spawn import REALTIME_REPEATS


class FakeProbe:
    def __init__(self, usable: bool) -> None:
        self.usable, self.calls = usable, 0

    def __call__(self) -> bool:
        self.calls += 1
        return self.usable


@pytest.mark.parametrize("suite", ["maps", "faults", "counts"])
def test_exact_suites_run_under_kvm_when_it_works_else_tcg_with_icount(suite, tmp_path):
    yes, no = FakeProbe(True), FakeProbe(False)
    assert resolve_icount(RunOptions(suite=suite, out=tmp_path), yes).icount is False
    assert resolve_icount(RunOptions(suite=suite, out=tmp_path), no).icount is True
    assert (yes.calls, no.calls) == (1, 1)


def test_the_leak_check_waits_longer_in_real_time(tmp_path):
    kvm = resolve_icount(RunOptions(suite="faults", out=tmp_path), FakeProbe(True))
    tcg = resolve_icount(RunOptions(suite="faults", out=tmp_path), FakeProbe(False))
    assert (kvm.leak_wait_ms, tcg.leak_wait_ms) == (5000, 500)
    args = [j.args for j in plan(kvm) if "--leak-wait-ms" in j.args]
    assert args and all(a[a.index("--leak-wait-ms") + 1] == "5000" for a in args)


def test_the_sweep_end_waits_out_kfree_rcus_batch_drain(tmp_path):
    """A node 7.x leaves pending in kfree_rcu's batches (KFREE_DRAIN_JIFFIES = 5 s) must be
    freed within the sweep end's wait, or the sweep's exact net row would be a guess: the
    bound passed to the guest covers the drain plus compare's grace margin, in both modes."""
    from orchestrator.analysis.rules import GRACE_MARGIN_MS
    from simulator.fork import KFREE_DRAIN_MS

    for usable in (True, False):
        opts = resolve_icount(RunOptions(suite="faults", out=tmp_path), FakeProbe(usable))
        args = [j.args for j in plan(opts) if "--settle-ms" in j.args]
        assert args and all(int(a[a.index("--settle-ms") + 1]) >= KFREE_DRAIN_MS + GRACE_MARGIN_MS
                            for a in args)


def test_spawn_keeps_virtual_time_by_default_even_with_kvm_and_never_probes(tmp_path):
    probe = FakeProbe(True)
    opts = resolve_icount(RunOptions(suite="spawn", out=tmp_path, vmas=(21,)), probe)
    assert opts.icount is True and probe.calls == 0
    assert {j.repeat for j in plan(opts)} == {0}  # one run: under -icount it repeats exactly


def test_spawn_in_real_time_needs_kvm_and_repeats_for_statistics(tmp_path):
    opts = RunOptions(suite="spawn", out=tmp_path, vmas=(21, 421), spawn_timing="realtime")
    rt = resolve_icount(opts, FakeProbe(True))
    assert rt.icount is False
    assert sorted({j.repeat for j in plan(rt)}) == list(range(REALTIME_REPEATS))
    with pytest.raises(ForkdiffError, match="needs KVM"):
        resolve_icount(opts, FakeProbe(False))
    with pytest.raises(ForkdiffError, match="unknown spawn timing"):
        resolve_icount(RunOptions(suite="spawn", out=tmp_path, spawn_timing="fast"), FakeProbe(True))


@pytest.mark.parametrize("asked", [True, False])
def test_an_explicit_choice_is_kept_and_no_probe_runs(asked, tmp_path: Path):
    probe = FakeProbe(not asked)
    for suite in ("maps", "spawn"):
        assert resolve_icount(RunOptions(suite=suite, out=tmp_path, icount=asked), probe).icount is asked
    assert probe.calls == 0
