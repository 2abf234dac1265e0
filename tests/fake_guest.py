"""The tests' one FAKE guest. It stands in for orchestrator.vm.guest.Guest wherever a test needs
a guest but no VM, and it says so: nothing here is a kernel.

FakeGuest runs every command with the host's `sh`:
- the guest programs' folder (orchestrator.suite_defs.base.GUEST_BIN, /usr/local/bin in the guest) is
  mapped to this checkout's guest/bin, so the suite pipeline runs the real guest programs on the
  host's kernel;
- with `root=` (a temporary folder), the guest's /sys/ and /proc/ are mapped into it: a test
  writes the debugfs attributes, slab caches, /proc/kallsyms or /proc/cmdline a kernel would
  show (write(), sysfs()), and reads back what the code under test wrote there (read()).
  Paths in the output are mapped back, so the code sees guest paths.

It satisfies orchestrator.vm.guest_api.GuestLike (tests/host/test_guest_suite_pipeline.py checks
the contract against the real Guest). Constructed like Guest(kernel, rootfs, ...), it can also
replace the Guest class itself: FakeGuest.refusing() records each initramfs it was asked to boot
and refuses, so a command runs up to the boot and no further."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from orchestrator.errors import ForkdiffError
from orchestrator.suite_defs.base import GUEST_BIN

ROOT = Path(__file__).resolve().parents[1]
GUEST_PATHS = ("/sys/", "/proc/")


@dataclass
class Res:
    """What Guest.run returns (orchestrator.vm.ssh.CommandResult's fields)."""

    status: int
    stdout: str
    stderr: str = ""


@dataclass
class FakeKernel:
    """FAKE BuiltKernel: the variant and profile a record names."""

    variant: str = "patched"
    profile: str = "faults"


class FakeGuest:
    """FAKE guest: the host's sh, guest/bin for the guest programs, and with `root=` the guest's
    /sys and /proc mapped into a temporary folder."""

    qemu_mode = "host"
    icount = False
    console_log = Path("/dev/null")
    boot_seconds = 0.0
    watcher = None
    booted: ClassVar[list] = []  # the initramfs of each construction (refusing() only)
    refuse_boot: ClassVar[bool] = False

    def __init__(self, kernel=None, rootfs=None, *, root: Path | None = None, **_kw) -> None:
        if self.refuse_boot:
            type(self).booted.append(rootfs)
            raise ForkdiffError("fake guest: this test boots no VM")
        self.kernel = kernel if kernel is not None else FakeKernel()
        self.root = Path(root) if root is not None else None
        self.commands: list[str] = []  # every command run, as the code under test wrote it

    @classmethod
    def refusing(cls) -> type[FakeGuest]:
        """A FakeGuest class for monkeypatching orchestrator.vm.guest.Guest: each construction
        records its initramfs in .booted and raises ForkdiffError('fake guest: ...')."""
        return type("RefusingFakeGuest", (cls,), {"booted": [], "refuse_boot": True})

    def __enter__(self) -> FakeGuest:
        return self

    def __exit__(self, *exc) -> None:
        return None

    # ---------------------------------------------------------------- the guest's files
    def host_path(self, guest_path: str) -> Path:
        """Where a guest path (/sys/..., /proc/...) lives on the host."""
        if self.root is None or not guest_path.startswith(GUEST_PATHS):
            raise ValueError(f"{guest_path}: only /sys/ and /proc/ are mapped, and only with root=")
        return self.root / guest_path.lstrip("/")

    def write(self, guest_path: str, text: str, mode: int = 0o644) -> None:
        p = self.host_path(guest_path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text if text.endswith("\n") else text + "\n")
        p.chmod(mode)

    def read(self, guest_path: str) -> str:
        return self.host_path(guest_path).read_text().strip()

    def exists(self, guest_path: str) -> bool:
        return self.host_path(guest_path).exists()

    def remove(self, guest_path: str) -> None:
        self.host_path(guest_path).unlink()

    def sysfs(self, fault_attrs: tuple[str, ...] = (), slabs: tuple[str, ...] = (),
              flag_writable: bool = True, kallsyms: str | None = None,
              cmdline: str | None = None) -> FakeGuest:
        """Lay out what a faults kernel shows: /sys/kernel/debug/<attr>/ with probability and
        require-start (the stack filter) for each fault attribute (failslab's ignore-gfp-wait
        at its kernel default Y), /sys/kernel/slab/<cache>/failslab at 0 for each cache (mode
        -r--r--r-- when the flag is read-only, as on 6.1), /proc/kallsyms, /proc/cmdline."""
        for a in fault_attrs:
            for f in ("probability", "require-start"):
                self.write(f"/sys/kernel/debug/{a}/{f}", "1")
        if "failslab" in fault_attrs:
            self.write("/sys/kernel/debug/failslab/ignore-gfp-wait", "Y")
        for c in slabs:
            self.write(f"/sys/kernel/slab/{c}/failslab", "0", 0o644 if flag_writable else 0o444)
            self.write(f"/sys/kernel/slab/{c}/min_partial", "5")  # every cache has one
        if kallsyms is not None:
            self.write("/proc/kallsyms", kallsyms)
        if cmdline is not None:
            self.write("/proc/cmdline", cmdline)
        return self

    # ---------------------------------------------------------------- GuestLike
    def check(self, tolerate: frozenset[str] = frozenset()) -> None:
        """The fake has no console: never a crash."""

    def run(self, cmd: str, timeout: float = 60, stdin: bytes | None = None,
            tolerate: frozenset[str] = frozenset()) -> Res:
        self.commands.append(cmd)
        host_cmd = cmd.replace(GUEST_BIN, str(ROOT / "guest" / "bin"))
        if self.root is not None:
            for prefix in GUEST_PATHS:
                host_cmd = host_cmd.replace(prefix, f"{self.root}{prefix}")
        r = subprocess.run(["sh", "-c", host_cmd], input=stdin, capture_output=True,
                           timeout=timeout)
        out, err = r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")
        if self.root is not None:
            out, err = out.replace(str(self.root), ""), err.replace(str(self.root), "")
        return Res(r.returncode, out, err)
