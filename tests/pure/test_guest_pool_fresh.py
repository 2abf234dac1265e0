"""GuestPool (orchestrator/vm/guest_pool.py): a suite that asks for a fresh guest (spawn, whose
timings depend on the guest's history) gets a new boot even when the previous suite's guest of
the same kernel is still running; the others go on with it. Unit test of our bookkeeping with a
FAKE Guest class (no QEMU): what boots is counted, nothing is run."""

from __future__ import annotations

from types import SimpleNamespace

from orchestrator.vm import guest as guest_mod
from orchestrator.vm.guest_pool import GuestPool


class FakeProc:
    def __init__(self) -> None:
        self.stopped = False

    def poll(self):
        return 0 if self.stopped else None


class FakeGuest:
    booted: list[FakeGuest] = []

    def __init__(self, kernel, rootfs, **kw) -> None:
        self.proc = FakeProc()

    def __enter__(self) -> FakeGuest:
        FakeGuest.booted.append(self)
        return self

    def __exit__(self, *exc) -> None:
        self.proc.stopped = True


def test_fresh_boots_a_new_guest_and_stops_the_old(monkeypatch) -> None:
    monkeypatch.setattr(guest_mod, "Guest", FakeGuest)
    FakeGuest.booted = []
    kernel = SimpleNamespace(bzimage="/k/bzImage", variant="patched", profile="faults")
    with GuestPool() as pool:
        maps, fresh1 = pool.get(kernel, None, icount=True, memory_mb=1024)
        counts, fresh2 = pool.get(kernel, None, icount=True, memory_mb=1024)
        assert fresh1 and not fresh2 and counts is maps  # the exact suites share one boot
        spawn, fresh3 = pool.get(kernel, None, icount=True, memory_mb=1024, fresh=True)
        assert fresh3 and spawn is not maps and maps.proc.stopped  # one guest at a time
        again, fresh4 = pool.get(kernel, None, icount=True, memory_mb=1024)
        assert again is spawn and not fresh4
    assert len(FakeGuest.booted) == 2 and spawn.proc.stopped
