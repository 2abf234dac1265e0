"""QEMU never outlives its Guest: a Python process holding a booted guest is sent SIGINT,
SIGTERM or SIGKILL, and the QEMU it started must be gone afterwards (real kernel, real QEMU)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

HOLDER = """
import json, sys, time
from orchestrator.prepare.kernel import build_kernel
from orchestrator.vm.guest import Guest
k = build_kernel(sys.argv[1], "faults", progress=False)
with Guest(k) as g:
    print(json.dumps({"qemu_pid": g.proc.pid, "console": str(g.console_log)}), flush=True)
    while True:
        time.sleep(0.1)
"""


def _alive(pid: int, marker: str) -> bool:
    """Is `pid` still the QEMU we started (not a zombie, not a recycled pid)?"""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return marker in cmdline and state != "Z"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_qemu_dies_with_its_holder(sig: signal.Signals, kernels: dict, tmp_path: Path) -> None:
    kernels["patched"]  # build (or fetch) before the holder needs it
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, "patched"], stdout=subprocess.PIPE,
                              text=True, cwd=Path(__file__).resolve().parents[2])
    try:
        assert holder.stdout is not None
        line = holder.stdout.readline()
        info = json.loads(line)
        pid, marker = info["qemu_pid"], info["console"]
        assert _alive(pid, marker)
        os.kill(holder.pid, sig)
        holder.wait(timeout=60)
        deadline = time.monotonic() + 30  # bounded wait for the kernel to deliver the kill
        while _alive(pid, marker) and time.monotonic() < deadline:
            time.sleep(0.1)
        print(f"\n{sig.name}: holder exited {holder.returncode}; QEMU {pid} alive: {_alive(pid, marker)}")
        assert not _alive(pid, marker)
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(timeout=30)
