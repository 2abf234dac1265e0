"""A host that lacks what a guest needs: `forkdiff boot` says so in one line with the next
step and exits 2, and starts no QEMU. For real: QEMU really absent from PATH (a PATH made of
links to every other program), every local port really taken (a network namespace of our own
whose ephemeral port range holds two ports, both bound; the host's own range is untouched)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from orchestrator.vm.qemu_cmd import QEMU

BOOT = [sys.executable, "-m", "orchestrator", "boot", "--variant", "baseline", "--profile",
        "faults", "--", "true"]


def _one_line_error(r: subprocess.CompletedProcess[str], cause: str) -> None:
    assert r.returncode == 2, r.stdout + r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("forkdiff: error:"), r.stderr
    assert cause in lines[0] and "next:" in lines[0] and "Traceback" not in r.stderr


def test_qemu_missing(tmp_path: Path, kernels, rootfs) -> None:
    kernels["baseline"]  # built (or cached) first: this test is about QEMU only
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for d in os.environ["PATH"].split(os.pathsep):
        if not os.path.isdir(d):
            continue
        for name in os.listdir(d):
            link = bin_dir / name
            if not name.startswith("qemu-system") and not link.exists() and not link.is_symlink():
                link.symlink_to(Path(d) / name)
    env = dict(os.environ, PATH=str(bin_dir))
    assert shutil.which(QEMU, path=env["PATH"]) is None and shutil.which("make", path=env["PATH"])
    r = subprocess.run(BOOT, capture_output=True, text=True, timeout=300, env=env)
    _one_line_error(r, f"{QEMU} is not installed")


HOLD_PORTS_THEN_BOOT = textwrap.dedent("""
    import socket, subprocess, sys
    held = []
    for port in (40000, 40001):
        s = socket.socket()
        s.bind(("127.0.0.1", port))
        s.listen()
        held.append(s)
    r = subprocess.run(sys.argv[1:], capture_output=True, text=True, timeout=300)
    sys.stdout.write(r.stdout)
    sys.stderr.write(r.stderr)
    sys.exit(r.returncode)
""")


def test_no_free_port(kernels, rootfs) -> None:
    kernels["baseline"]
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("ip"):
        pytest.skip("needs root, unshare and ip for a network namespace of its own")
    script = ('ip link set lo up && sysctl -q -w net.ipv4.ip_local_port_range="40000 40001" && '
              'exec "$@"')
    cmd = ["unshare", "-n", "sh", "-c", script, "sh", sys.executable, "-c", HOLD_PORTS_THEN_BOOT,
           *BOOT]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, FORKDIFF_ACCEL="tcg"))
    _one_line_error(r, "no free TCP port on 127.0.0.1")
