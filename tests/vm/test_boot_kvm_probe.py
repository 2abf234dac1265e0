"""The KVM probe: the real probe with the real kernel answers (yes or no) without hanging and
its answer is cached for this boot of the host; a FAKE qemu that hangs (a shell script that
sleeps, standing in for a KVM_RUN that never returns) makes the probe answer no at its
timeout and leaves no process behind."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from orchestrator import kvm


@pytest.mark.vm
def test_real_probe_answers_and_is_cached(kernels: dict, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    bz = Path(kernels["patched"].bzimage)  # from the real cache, before switching caches
    monkeypatch.setenv("FORKDIFF_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("FORKDIFF_ACCEL", raising=False)
    first = kvm.probe(bz)
    print(f"\nKVM probe: usable={first.usable} ({first.reason}) in {first.seconds:.2f} s")
    assert first.method in ("kernel", "observed") or not os.path.exists("/dev/kvm")
    assert first.reason
    again = kvm.probe(bz)
    assert (again.usable, again.reason, again.method) == (first.usable, first.reason, first.method)


def test_hanging_qemu_makes_the_probe_say_no(tmp_path: Path) -> None:
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        pytest.skip("the probe stops before starting QEMU when /dev/kvm is not usable")
    pidfile = tmp_path / "pid"
    fake = tmp_path / "fake-qemu"
    fake.write_text(f"#!/bin/sh\necho $$ > {pidfile}\nexec sleep 1000\n")
    fake.chmod(0o755)
    t0 = time.monotonic()
    result = kvm.run_probe(None, timeout=1.0, qemu=str(fake))
    print(f"\nfake hang: {result} after {time.monotonic() - t0:.2f} s")
    assert not result.usable
    assert "hangs" in result.reason
    pid = int(pidfile.read_text())
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        state = "gone"
    assert state in ("gone", "Z")  # killed (a zombie until reaped at most)
