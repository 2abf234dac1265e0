"""The KVM probe's timeout, without a VM: a FAKE qemu that hangs (a shell script that sleeps,
standing in for a KVM_RUN that never returns) makes the probe answer no at its timeout and leaves
no process behind. The real probe on a real kernel is tests/vm/test_boot_kvm_probe.py."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from orchestrator.vm import kvm


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
