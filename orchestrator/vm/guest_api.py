"""What the suites need of a running guest: the contract between orchestrator.run.suites (and
faultsetup, kmemleak) and orchestrator.vm.guest.Guest, stated as typing.Protocols the way syzkaller's
vm.Instance states its own. orchestrator.vm.guest.Guest is the real implementation; the unit tests'
fakes implement the same protocols."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

from ..prepare.kernel import BuiltKernel
from .ssh import CommandResult


class Console(Protocol):
    """The guest's serial console as the host watches it (orchestrator.vm.guest.ConsoleWatcher)."""

    def mark(self) -> int: ...  # a position in the console's lines

    def lines_since(self, mark: int, before_crash: bool = False) -> list[str]: ...

    def tail(self) -> str: ...


@runtime_checkable
class GuestLike(Protocol):
    """A booted guest a suite runs its jobs on."""

    kernel: BuiltKernel
    qemu_mode: str  # "tcg", "tcg+icount" or "kvm"
    console_log: Path
    boot_seconds: float
    watcher: Console | None

    def run(self, cmd: str, timeout: float = ..., stdin: bytes | None = ...,
            tolerate: frozenset[str] = ...) -> CommandResult:
        """Run a shell command; raise GuestCrashed / GuestHung / GuestLost when the guest
        dies, hangs or disappears meanwhile."""
        ...

    def check(self, tolerate: frozenset[str] = ...) -> None:
        """Raise as run() would if the console shows a crash now."""
        ...
