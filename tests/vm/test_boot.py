"""The guest VM end to end, on the real kernels (faults profile) of both variants: boot, SSH
with the pinned key, SFTP, fault-injection files, crash detection, hang detection."""

from __future__ import annotations

import contextlib
import subprocess
import time
from pathlib import Path

import paramiko
import pytest

from orchestrator.prepare.kernel import BuiltKernel
from orchestrator.prepare.rootfs import Rootfs
from orchestrator.vm import ssh
from orchestrator.vm.guest import Guest, GuestCrashed, GuestHung, GuestLost


def test_uname_names_the_variant(guest: Guest) -> None:
    r = guest.run("uname -r", timeout=60)
    assert r.status == 0, r.stderr
    assert r.stdout.strip() == guest.kernel.release
    assert f"-{guest.kernel.variant}-" in r.stdout


def test_fault_injection_knobs_exist(guest: Guest) -> None:
    r = guest.run("ls -l /proc/thread-self/fail-nth /sys/kernel/debug/failslab/ignore-gfp-wait",
                  timeout=60)
    assert r.status == 0, r.stderr
    assert "fail-nth" in r.stdout and "ignore-gfp-wait" in r.stdout
    # By default failslab ignores allocations that may sleep (mm/failslab.c:
    # .ignore_gfp_reclaim = true, the debugfs file ignore-gfp-wait): reads back Y.
    assert guest.run("cat /sys/kernel/debug/failslab/ignore-gfp-wait", timeout=60).stdout.strip() == "Y"


def test_pushed_static_program_runs(guest: Guest, tmp_path: Path) -> None:
    src = tmp_path / "sum.c"
    src.write_text(
        '#include <stdio.h>\n#include <stdlib.h>\n'
        'int main(int argc, char **argv) {\n'
        '  long s = 0; for (int i = 1; i < argc; i++) s += atol(argv[i]);\n'
        '  printf("sum=%ld\\n", s); return (int)(s % 7);\n}\n')
    exe = tmp_path / "sum"
    subprocess.run(["gcc", "-static", "-O2", "-o", str(exe), str(src)], check=True, timeout=120)
    guest.put(exe, "/tmp/sum", mode=0o755)
    r = guest.run("/tmp/sum 19 23 5", timeout=60)
    assert r.stdout == "sum=47\n"
    assert r.status == 47 % 7


def test_command_status_and_stderr(guest: Guest) -> None:
    r = guest.run("echo out; echo err >&2; exit 5", timeout=60)
    assert (r.status, r.stdout, r.stderr) == (5, "out\n", "err\n")


def test_connection_is_loopback_only(guest: Guest) -> None:
    assert guest.ssh is not None
    assert guest.ssh.peer() == ("127.0.0.1", guest.ssh_port)
    cmdline = (guest.log_dir / "qemu.cmdline").read_text()
    assert f"hostfwd=tcp:127.0.0.1:{guest.ssh_port}-:22" in cmdline
    assert "restrict=on" in cmdline
    assert guest.qmp_status() == "running"


def test_changed_host_key_is_refused(guest: Guest, rootfs: Rootfs, tmp_path: Path) -> None:
    other = tmp_path / "other_host_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    wrong = tmp_path / "known_hosts"
    wrong.write_text("forkdiff-guest " + Path(f"{other}.pub").read_text())
    with pytest.raises(paramiko.BadHostKeyException):
        ssh.connect_once(guest.ssh_port, rootfs.client_key, wrong, timeout=30)
    # ...while the pinned key still gets in.
    sess = ssh.connect_once(guest.ssh_port, rootfs.client_key, rootfs.known_hosts, timeout=30)
    try:
        assert sess.run("echo pinned-ok", timeout=60).stdout == "pinned-ok\n"
    finally:
        sess.close()


def test_hung_command_is_reported_and_guest_stays_usable(guest: Guest) -> None:
    t0 = time.monotonic()
    with pytest.raises(GuestHung):
        guest.run("sleep 60", timeout=2)
    print(f"GuestHung after {time.monotonic() - t0:.1f} s")
    assert guest.run("echo alive", timeout=60).stdout == "alive\n"


def test_sysrq_crash_is_reported_with_excerpt(kernels: dict[str, BuiltKernel], rootfs: Rootfs) -> None:
    """A real panic is reported from the console as it happens, not when the command's
    time-out (300 s) fires: GuestCrashed (a time-out would be GuestHung), raised after the
    console watcher saw the panic line, and long before the time-out (under a tenth of it; it
    takes about a second). Also the deterministic-time mode: -icount shift=0,sleep=off."""
    kernel = kernels["patched"]
    timeout = 300.0
    with Guest(kernel, rootfs, icount=True) as g:
        assert g.qemu_mode == "tcg+icount"
        assert "-icount shift=0,sleep=off" in (g.log_dir / "qemu.cmdline").read_text()
        assert g.watcher is not None and g.watcher.crash is None
        t0 = time.monotonic()
        with pytest.raises(GuestCrashed) as info:
            g.run("echo c > /proc/sysrq-trigger", timeout=timeout)
        raised = time.monotonic()
        seen = g.watcher.crash_time
        print(f"\nGuestCrashed({info.value.kind}) {raised - t0:.1f} s after the trigger, "
              f"console line seen after {seen - t0 if seen else float('nan'):.1f} s "
              f"({g.qemu_mode}, command timeout was {timeout:.0f} s)")
        assert seen is not None and t0 <= seen <= raised  # reported because the console showed it
        assert raised - t0 < timeout / 10  # ...long before the time-out would have fired
        err = info.value
        assert err.kind == "panic"
        assert "Kernel panic - not syncing" in err.line
        assert "sysrq" in err.excerpt.lower()
        assert err.line in err.excerpt
        assert err.console_log == g.console_log
        assert err.line in g.console_log.read_text(errors="replace")
        # The guest is dead: further commands fail the same way, at once.
        with pytest.raises(GuestCrashed):
            g.run("true", timeout=60)


def test_qemu_exit_is_reported_as_lost(kernels: dict[str, BuiltKernel], rootfs: Rootfs) -> None:
    with Guest(kernels["patched"], rootfs) as g:
        assert g.qmp is not None
        with contextlib.suppress(Exception):  # QEMU may hang up before answering
            g.qmp.cmd("quit")
        with pytest.raises(GuestLost):
            g.run("true", timeout=60)


def test_non_fatal_report_is_raised_then_can_be_cleared(guest: Guest) -> None:
    """A console line in the kernel's WARNING format (written through /dev/kmsg, which the
    kernel prints on the console like its own messages) is reported; the guest lives on and,
    once the report is acknowledged, later commands run."""
    with pytest.raises(GuestCrashed) as info:
        guest.run("echo 'WARNING: forkdiff test of the console watcher' > /dev/kmsg", timeout=60)
    assert info.value.kind == "warning"
    assert "forkdiff test of the console watcher" in info.value.excerpt
    assert guest.qemu_alive()
    acked = guest.clear_crash()
    assert acked is not None and acked.kind == "warning"
    assert guest.run("echo still-here", timeout=60).stdout == "still-here\n"
