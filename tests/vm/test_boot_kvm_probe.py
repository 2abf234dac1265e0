"""The KVM probe: the real probe with the real kernel answers (yes or no) without hanging and
its answer is cached for this boot of the host: a second call does not probe again (the probe
function is then replaced by a FAKE that counts its calls), a refresh or another boot of the
host does. The probe's timeout on a hanging QEMU needs no VM: tests/host/test_kvm_probe_timeout.py."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from orchestrator.vm import kvm


def test_real_probe_answers_and_is_cached(kernels: dict, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    bz = Path(kernels["patched"].bzimage)  # from the real cache, before switching caches
    monkeypatch.setenv("FORKDIFF_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("FORKDIFF_ACCEL", raising=False)
    record = tmp_path / "cache" / "kvm-probe.json"
    assert not record.exists()
    first = kvm.probe(bz)
    print(f"\nKVM probe: usable={first.usable} ({first.reason}) in {first.seconds:.2f} s")
    assert first.method == "kernel"  # a fresh cache: the real probe booted our kernel
    if not os.path.exists("/dev/kvm"):
        assert not first.usable and "/dev/kvm" in first.reason
    elif first.usable:
        assert "'Linux version' printed under KVM" in first.reason
    else:
        assert "hangs" in first.reason or "exited" in first.reason or "/dev/kvm" in first.reason
    saved = json.loads(record.read_text())
    assert (saved["usable"], saved["reason"], saved["method"]) == (first.usable, first.reason, "kernel")
    assert saved["boot_id"] == Path("/proc/sys/kernel/random/boot_id").read_text().strip()

    calls: list[tuple] = []

    def counting_probe(bzimage=None, *a, **kw):  # FAKE: counts, answers the opposite
        calls.append((bzimage, a, kw))
        return kvm.KvmProbe(not first.usable, "fake probe", 0.0, "kernel")

    monkeypatch.setattr(kvm, "run_probe", counting_probe)
    again = kvm.probe(bz)
    assert calls == []  # answered from the record, no QEMU started
    assert (again.usable, again.reason, again.method) == (first.usable, first.reason, first.method)
    # The counter does see a probe: a refresh probes again, and so does another host boot.
    assert kvm.probe(bz, refresh=True).reason == "fake probe" and len(calls) == 1
    kvm._record(first)  # the real answer again, for this boot
    assert kvm.probe(bz).reason == first.reason and len(calls) == 1
    monkeypatch.setattr(kvm, "_boot_id", lambda: "another-boot")
    assert kvm.probe(bz).reason == "fake probe" and len(calls) == 2
