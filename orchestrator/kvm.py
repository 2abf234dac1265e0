"""Does KVM work here? A probe that never trusts the device node: it starts QEMU with
`-accel kvm` and SeaBIOS, and waits a few seconds for the BIOS banner on the debug console,
i.e. for guest code actually executed by a KVM vCPU. On some hosts /dev/kvm exists but
KVM_CREATE_VM or KVM_RUN hangs: the probe times out and answers no. The answer is cached per
boot of the host (keyed by /proc/sys/kernel/random/boot_id)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from .cache import atomic_write, cache_dir, locked

QEMU = "qemu-system-x86_64"
PROBE_TIMEOUT = 6.0
BANNER = b"SeaBIOS"


@dataclass(frozen=True)
class KvmProbe:
    usable: bool
    reason: str
    seconds: float


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "unknown"


def _cache_file() -> Path:
    return cache_dir() / "kvm-probe.json"


def run_probe(timeout: float = PROBE_TIMEOUT, qemu: str = QEMU) -> KvmProbe:
    """Run the probe now (no cache). Never blocks longer than about `timeout` seconds, even
    when the QEMU child is stuck in the kernel: it is SIGKILLed and not waited for beyond
    a short grace."""
    start = time.monotonic()
    if not os.path.exists("/dev/kvm"):
        return KvmProbe(False, "/dev/kvm does not exist", 0.0)
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return KvmProbe(False, "/dev/kvm is not readable and writable by this user", 0.0)
    cmd = [qemu, "-accel", "kvm", "-machine", "pc", "-nodefaults", "-display", "none",
           "-monitor", "none", "-serial", "none", "-m", "32", "-no-reboot",
           "-debugcon", "stdio", "-global", "isa-debugcon.iobase=0x402"]
    try:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, start_new_session=True)
    except OSError as exc:
        return KvmProbe(False, f"cannot start {qemu}: {exc}", 0.0)
    assert proc.stdout is not None
    os.set_blocking(proc.stdout.fileno(), False)
    seen = b""
    usable = False
    reason = f"no BIOS output within {timeout:.0f} s under KVM (hangs)"
    deadline = start + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(BlockingIOError):
            chunk = proc.stdout.read()
            if chunk:
                seen += chunk
        if BANNER in seen:
            usable, reason = True, "SeaBIOS ran under KVM"
            break
        if proc.poll() is not None:
            err = (proc.stderr.read() if proc.stderr else b"").decode(errors="replace").strip()
            reason = f"QEMU exited with {proc.returncode} under KVM: {err.splitlines()[-1] if err else ''}"
            break
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=1.0)  # a child stuck in D state stays a zombie; do not block on it
    for fh in (proc.stdout, proc.stderr):
        if fh is not None:
            fh.close()
    return KvmProbe(usable, reason, time.monotonic() - start)


def probe(refresh: bool = False) -> KvmProbe:
    """The cached answer for this boot of the host, probing if there is none.
    FORKDIFF_ACCEL=tcg skips the probe and answers no."""
    if os.environ.get("FORKDIFF_ACCEL", "").lower() == "tcg":
        return KvmProbe(False, "FORKDIFF_ACCEL=tcg", 0.0)
    boot = _boot_id()
    path = _cache_file()
    with locked("kvm-probe"):
        if not refresh:
            with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                data = json.loads(path.read_text())
                if data["boot_id"] == boot:
                    return KvmProbe(bool(data["usable"]), str(data["reason"]),
                                    float(data["seconds"]))
        result = run_probe()
        atomic_write(path, json.dumps({"boot_id": boot, "usable": result.usable,
                                       "reason": result.reason, "seconds": result.seconds}))
    return result


def mark_unusable(reason: str) -> None:
    """Record that KVM failed in practice (e.g. a guest that never printed anything), so the
    rest of this host boot uses TCG without probing again."""
    atomic_write(_cache_file(), json.dumps({"boot_id": _boot_id(), "usable": False,
                                            "reason": reason, "seconds": 0.0}))
