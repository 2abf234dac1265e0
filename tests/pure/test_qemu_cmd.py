"""The QEMU command line (pure): what TCG guests get for a fast boot, and what KVM guests do
not get."""

from __future__ import annotations

from pathlib import Path

from orchestrator.vm.qemu_cmd import BASE_APPEND, QemuConfig, qemu_argv


def _cfg(accel: str, icount: bool = False) -> QemuConfig:
    return QemuConfig(bzimage=Path("/k/bzImage"), initrd=Path("/r/initramfs.cpio"),
                      console_log=Path("/l/console.log"), qmp_socket=Path("/s/qmp.sock"),
                      ssh_port=2222, accel=accel, icount=icount, extra_append="x=1")


def _arg(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


def test_tcg_guest_has_rdrand_and_skips_the_timer_calibrations() -> None:
    argv = qemu_argv(_cfg("tcg", icount=True))
    assert _arg(argv, "-cpu") == "qemu64,+rdrand"
    append = _arg(argv, "-append")
    assert append.startswith(BASE_APPEND)
    assert "noapictimer" in append.split() and "no_timer_check" in append.split()
    assert append.endswith(" x=1")
    assert _arg(argv, "-icount") == "shift=0,sleep=off"
    assert _arg(argv, "-initrd") == "/r/initramfs.cpio"


def test_kvm_guest_keeps_the_host_cpu_and_its_apic_timer() -> None:
    argv = qemu_argv(_cfg("kvm"))
    assert _arg(argv, "-cpu") == "host"
    assert _arg(argv, "-append") == f"{BASE_APPEND} x=1"
    assert "-icount" not in argv
