"""Boot to SSH ready, per phase: boots the faults (or perf) kernel of a variant several times the
way the suites do (TCG with -icount unless --no-icount) and prints min/median/max of the wall
time from QEMU's start to each landmark (Guest.boot_phases) and to the first command's answer,
with the CPU time QEMU had used by then (sampled every 5 ms from /proc/<pid>/stat). The console
is read every 0.1 s until /init starts and every 10 ms from there to the readiness marker, so
the kernel's first line and /init are timed to 0.1 s. On a busy
machine the wall time stretches with the load; QEMU's CPU time hardly does, and on an idle
one it is the wall time less the waits. Prints figures with the load average; asserts nothing.

    python3 -m tools.bench_boot [-n 5] [--variant patched] [--profile faults] [--no-icount]
    make bench-boot BOOT_ARGS="-n 10"      (make bench runs it with the defaults)
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time

from orchestrator.prepare.kconfig import PROFILES
from orchestrator.prepare.kernel import VARIANTS, build_kernel
from orchestrator.prepare.rootfs import build_rootfs
from orchestrator.vm.guest import Guest

PHASES = ("qmp connected", "kernel first line", "init started", "ready marker", "ssh connected",
          "first command")


TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process (None once it is gone)."""
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / TICK


class CpuSampler:
    """Samples the CPU time of a guest's QEMU every 5 ms while the guest boots."""

    def __init__(self, guest: Guest):
        self.guest = guest
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(0.005):
            proc = self.guest.proc
            cpu = cpu_seconds(proc.pid) if proc is not None else None
            if cpu is not None:
                self.samples.append((time.monotonic(), cpu))

    def __enter__(self) -> CpuSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def at(self, when: float) -> float:
        """QEMU's CPU time at the last sample before `when` (time.monotonic())."""
        return max((cpu for t, cpu in self.samples if t <= when), default=0.0)


def boot_once(kernel, rootfs, icount: bool, append: str) -> tuple[dict[str, float], dict[str, float]]:
    """(wall seconds, QEMU CPU seconds) at each phase of one boot."""
    g = Guest(kernel, rootfs, icount=icount, extra_append=append)
    with CpuSampler(g) as sampler, g:
        t0 = time.monotonic() - g.boot_seconds
        g.run("true", timeout=60)
        wall = dict(g.boot_phases)
        wall["first command"] = time.monotonic() - t0
        wall["ssh attempts"] = g.ssh.connect_attempts if g.ssh is not None else 0
        time.sleep(0.01)
        cpu = {phase: sampler.at(t0 + s) for phase, s in wall.items()}
        return wall, cpu


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench_boot", description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=5, help="boots (default 5)")
    ap.add_argument("--variant", default="patched", choices=VARIANTS)
    ap.add_argument("--profile", default="faults", choices=sorted(PROFILES))
    ap.add_argument("--no-icount", action="store_true", help="plain TCG (or KVM where it works)")
    ap.add_argument("--append", default="", help="extra kernel parameters")
    args = ap.parse_args(argv if argv is not None else [])
    kernel = build_kernel(args.variant, args.profile, progress=False)
    rootfs = build_rootfs()
    walls: list[dict[str, float]] = []
    cpus: list[dict[str, float]] = []
    print(f"boot to SSH ready: {kernel.release}, {'tcg' if args.no_icount else 'tcg+icount'}, "
          f"bzImage {kernel.bzimage.stat().st_size / 1e6:.1f} MB, "
          f"initramfs {rootfs.path.stat().st_size / 1e6:.1f} MB, load before {loadavg()}")
    for i in range(args.n):
        wall, cpu = boot_once(kernel, rootfs, not args.no_icount, args.append)
        walls.append(wall)
        cpus.append(cpu)
        print(f"  boot {i + 1} (load {loadavg().split()[0]}): "
              + ", ".join(f"{k} {v:.2f}" for k, v in wall.items() if k in PHASES)
              + f"; SSH connections tried: {wall['ssh attempts']:.0f}", flush=True)
    print(f"seconds from QEMU start to each phase (n={len(walls)}, min / median / max; "
          f"load after {loadavg()}):")
    print(f"  {'':<20} {'wall':^20}   {'QEMU CPU':^20}   {'step (median)':>13}")
    prev = 0.0
    for phase in PHASES:
        w = [r[phase] for r in walls if phase in r]
        c = [r[phase] for r in cpus if phase in r]
        if not w:
            continue
        med = statistics.median(w)
        print(f"  {phase:<20} {min(w):6.2f} {med:6.2f} {max(w):6.2f}   "
              f"{min(c):6.2f} {statistics.median(c):6.2f} {max(c):6.2f}   {med - prev:13.2f}")
        prev = med
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
