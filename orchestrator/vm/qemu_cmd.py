"""The qemu-system-x86_64 command line for one guest (pure: no processes started here)."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ForkdiffError

QEMU = "qemu-system-x86_64"

# Kernel command line. norandmaps: deterministic user addresses (the simulator predicts them);
# nokaslr: deterministic kernel addresses; oops=panic + panic=-1 + QEMU -no-reboot: any oops
# ends the VM at once, so a crash is seen in seconds instead of as a hang; printk.devkmsg=on:
# lines a guest program writes to /dev/kmsg (faultsweep's "forkdiff-sweep: k=K") are not
# ratelimited, so the console names the step a crash happened in.
# watchdog_thresh=60 (soft lockup after 120 s, hard lockup after 60 s) and an RCU stall
# timeout of 120 s: without -icount a guest's clock is the host's, and a guest starved by a
# loaded host once reported a false "soft lockup - CPU#0 stuck for 22s" while booting. Tests
# that provoke lockups lower the thresholds in their own guest at run time.
BASE_APPEND = ("console=ttyS0,115200 earlyprintk=serial,ttyS0,115200 panic=-1 oops=panic "
               "printk.devkmsg=on norandmaps nokaslr rdinit=/init "
               "watchdog_thresh=60 rcupdate.rcu_cpu_stall_timeout=120")

# Under TCG (the boot-time figures are QEMU CPU seconds with -icount, see tools/bench_boot.py):
# - The CPU has RDRAND (qemu64 lacks it; TCG emulates it from the host's getrandom()), so the
#   kernel's RNG is seeded at boot (random.trust_cpu is on by default). Without it sshd's first
#   getrandom() blocked until the jitter entropy loop had run, 1.0 s of guest time after /init
#   started: 1.3 s of QEMU CPU per boot.
# - noapictimer: the local APIC timer is not calibrated. That calibration spins on rdtsc and
#   pause for 0.22 s of guest time, and under -icount each of those instructions ends a
#   translation block and pause returns to QEMU's main loop: 2.0 s of QEMU CPU per boot, over
#   half of it. TCG has no TSC-deadline timer (the other way to skip it). The tick then comes
#   from the global clock event device, the PIT (the kernels have no ACPI, so no HPET), and is
#   broadcast to the other CPU.
# - no_timer_check: the check that the timer interrupt works (a 16 ms rdtsc/pause spin, as
#   above) is skipped: 0.23 s of QEMU CPU. QEMU's timer works.
TCG_CPU = "qemu64,+rdrand"
TCG_APPEND = "noapictimer no_timer_check"


@dataclass(frozen=True)
class QemuConfig:
    bzimage: Path
    initrd: Path
    console_log: Path
    qmp_socket: Path  # a unix socket QEMU connects to (we are the server)
    ssh_port: int  # host port on 127.0.0.1 forwarded to the guest's port 22
    accel: str = "tcg"  # "kvm" or "tcg"
    icount: bool = False  # -icount shift=0,sleep=off: deterministic virtual time (TCG only)
    memory_mb: int = 1024
    smp: int = 1
    nic_model: str = "virtio-net-pci"
    extra_append: str = ""
    extra_args: tuple[str, ...] = field(default_factory=tuple)
    owner_pid: int = field(default_factory=os.getpid)  # the forkdiff process that started it

    @property
    def mode(self) -> str:
        return "tcg+icount" if self.icount else self.accel


def qemu_argv(cfg: QemuConfig, qemu: str = QEMU) -> list[str]:
    if cfg.icount and cfg.accel != "tcg":
        raise ValueError("icount needs the TCG accelerator")
    append = BASE_APPEND + (f" {TCG_APPEND}" if cfg.accel == "tcg" else "")
    append += f" {cfg.extra_append}" if cfg.extra_append else ""
    argv = [
        qemu,
        "-name", f"forkdiff-guest-{cfg.owner_pid}",  # `ps` shows which forkdiff process owns it
        "-machine", "pc",
        "-accel", cfg.accel,
        "-cpu", TCG_CPU if cfg.accel == "tcg" else "host",
        "-m", str(cfg.memory_mb),
        # one socket per CPU: the kernels have no ACPI (kconfig/base.config), so they find CPUs
        # in SeaBIOS's MP table, which lists one CPU per package
        "-smp", f"{cfg.smp},sockets={cfg.smp},cores=1,threads=1",
        "-nodefaults",
        "-no-user-config",
        "-display", "none",
        "-no-reboot",
        "-kernel", str(cfg.bzimage),
        "-initrd", str(cfg.initrd),
        "-append", append,
        "-serial", f"file:{cfg.console_log}",
        "-qmp", f"unix:{cfg.qmp_socket}",
        "-netdev", f"user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:{cfg.ssh_port}-:22",
        "-device", f"{cfg.nic_model},netdev=n0",
    ]
    if cfg.icount:
        argv += ["-icount", "shift=0,sleep=off"]
    argv += list(cfg.extra_args)
    return argv


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (bind to port 0, read, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", 0))
        except OSError as err:
            raise ForkdiffError(f"no free TCP port on 127.0.0.1 for the guest's SSH forward: "
                                f"{err.strerror or err}",
                                "free some ports (ss -tanp shows who holds them) or widen "
                                "net.ipv4.ip_local_port_range") from None
        return int(s.getsockname()[1])


def nic_model_for(config_text: str) -> str:
    """The QEMU NIC matching the driver built into a kernel .config."""
    if "CONFIG_VIRTIO_NET=y" in config_text and "CONFIG_VIRTIO_PCI=y" in config_text:
        return "virtio-net-pci"
    return "e1000"
