"""Does KVM work here? A probe that never trusts the device node: it starts QEMU with
`-accel kvm` and the CPU model the guest will use, boots a kernel (ours, when given) and waits
a few seconds for "Linux version" on the serial console, i.e. for guest code actually run by a
KVM vCPU. Without a kernel it waits for the SeaBIOS banner on the debug console (weaker: on
this kind of host SeaBIOS runs under KVM but Linux then hangs silently). On some hosts
/dev/kvm exists but KVM_CREATE_VM or KVM_RUN hangs: the probe times out and answers no. The
answer is cached per boot of the host (keyed by /proc/sys/kernel/random/boot_id)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from ..cache import atomic_write, cache_dir, locked
from .qemu_cmd import QEMU

KVM_CPU = "host"  # the -cpu model guests use under KVM (orchestrator.vm.qemu_cmd)
PROBE_TIMEOUT = 8.0
BIOS_BANNER = b"SeaBIOS"
KERNEL_BANNER = b"Linux version"


@dataclass(frozen=True)
class KvmProbe:
    usable: bool
    reason: str
    seconds: float
    method: str = "kernel"  # "kernel" (booted a bzImage) or "bios" (SeaBIOS only)


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "unknown"


def _cache_file() -> Path:
    return cache_dir() / "kvm-probe.json"


def probe_argv(bzimage: Path | None, qemu: str = QEMU) -> tuple[list[str], bytes]:
    """The probe's QEMU command and the banner that proves guest code ran."""
    base = [qemu, "-accel", "kvm", "-cpu", KVM_CPU, "-machine", "pc", "-nodefaults",
            "-display", "none", "-monitor", "none", "-no-reboot"]
    if bzimage is None:
        return base + ["-m", "32", "-serial", "none", "-debugcon", "stdio",
                       "-global", "isa-debugcon.iobase=0x402"], BIOS_BANNER
    return base + ["-m", "256", "-serial", "stdio", "-kernel", str(bzimage), "-append",
                   "console=ttyS0 earlyprintk=serial,ttyS0,115200 panic=-1"], KERNEL_BANNER


def run_probe(bzimage: Path | None = None, timeout: float = PROBE_TIMEOUT,
              qemu: str = QEMU) -> KvmProbe:
    """Run the probe now (no cache). Never blocks longer than about `timeout` seconds, even
    when the QEMU child is stuck in the kernel: it is SIGKILLed and not waited for beyond
    a short grace."""
    start = time.monotonic()
    method = "bios" if bzimage is None else "kernel"
    if not os.path.exists("/dev/kvm"):
        return KvmProbe(False, "/dev/kvm does not exist", 0.0, method)
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return KvmProbe(False, "/dev/kvm is not readable and writable by this user", 0.0, method)
    cmd, banner = probe_argv(bzimage, qemu)
    try:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, start_new_session=True)
    except OSError as exc:
        return KvmProbe(False, f"cannot start {qemu}: {exc}", 0.0, method)
    assert proc.stdout is not None
    os.set_blocking(proc.stdout.fileno(), False)
    seen = b""
    usable = False
    reason = f"no {banner.decode()!r} within {timeout:.0f} s under KVM (hangs)"
    deadline = start + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(BlockingIOError):
            chunk = proc.stdout.read()
            if chunk:
                seen += chunk
        if banner in seen:
            usable, reason = True, f"{banner.decode()!r} printed under KVM"
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
    return KvmProbe(usable, reason, time.monotonic() - start, method)


def probe(bzimage: Path | None = None, refresh: bool = False) -> KvmProbe:
    """The cached answer for this boot of the host, probing if there is none (or if the cached
    yes came from the weaker BIOS-only probe and a kernel is given now).
    FORKDIFF_ACCEL=tcg skips the probe and answers no."""
    if os.environ.get("FORKDIFF_ACCEL", "").lower() == "tcg":
        return KvmProbe(False, "FORKDIFF_ACCEL=tcg", 0.0, "env")
    boot = _boot_id()
    path = _cache_file()
    with locked("kvm-probe"):
        if not refresh:
            with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                data = json.loads(path.read_text())
                cached = KvmProbe(bool(data["usable"]), str(data["reason"]),
                                  float(data["seconds"]), str(data.get("method", "bios")))
                weak = cached.usable and cached.method == "bios" and bzimage is not None
                if data["boot_id"] == boot and not weak:
                    return cached
        result = run_probe(bzimage)
        _record(result)
    return result


def _record(result: KvmProbe) -> None:
    atomic_write(_cache_file(), json.dumps({"boot_id": _boot_id(), "usable": result.usable,
                                            "reason": result.reason, "seconds": result.seconds,
                                            "method": result.method}))


def mark_unusable(reason: str) -> None:
    """Record that KVM failed in practice (e.g. a guest that never printed anything), so the
    rest of this host boot uses TCG without probing again."""
    _record(KvmProbe(False, reason, 0.0, "observed"))
