"""The one error type a user can cause: a cause, the next step, and the log to read."""

from __future__ import annotations

from pathlib import Path


class ForkdiffError(Exception):
    """An error the user can act on. The CLI prints it as one line and exits non-zero.

    cause:      what went wrong, naming the file/option/value involved.
    next_step:  what to do about it.
    log:        the log file holding the details, if any.
    """

    exit_code = 2

    def __init__(self, cause: str, next_step: str = "", log: Path | str | None = None):
        super().__init__(cause)
        self.cause = cause
        self.next_step = next_step
        self.log = Path(log) if log else None

    def one_line(self) -> str:
        parts = [f"forkdiff: error: {self.cause}"]
        if self.next_step:
            parts.append(f"next: {self.next_step}")
        if self.log:
            parts.append(f"log: {self.log}")
        return " | ".join(parts)


class KernelDoesNotBuild(ForkdiffError):
    """The kernel's source does not compile, or a patch of its variant does not apply: a fact about
    the source (a bisection skips such a commit; a series names the patch), not about the host."""
