"""Markers from the folder: a test's first folder under tests/ says what it needs, and gets that
marker here (no test file marks itself). docs/testing.md says which folder a new test goes in.

    pure   Python only (the POSIX shell and its basic tools are allowed: sh, coreutils, grep,
           sed, awk, find; the FAKE guest runs sh): no compiler, no git, no kernel tree, no VM
    host   host tools: gcc/make (the guest programs, the maple tree oracle's harness), git, tar,
           cpio, ssh-keygen, setarch, busybox/sshd, Chromium; no kernel tree, no VM
    tree   a kernel tree: the Debian tree unpacked into the cache (linux-source-6.12), a
           `debian:` tree fetched with apt, or kernels built from one; no VM
    vm     boots a real kernel in QEMU (needs built kernels and the initramfs)

`python3 -m pytest -m "pure or host" tests` runs what needs neither a tree nor a VM."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
NEEDS = ("pure", "host", "tree", "vm")
_elsewhere: list[str] = []


def pytest_configure(config: pytest.Config) -> None:
    """A test session started in the background of a non-interactive shell (`make test &`,
    nohup) inherits SIGINT ignored, and so would every run a test starts: the tests that
    interrupt a run with SIGINT, as Ctrl-C does, then see it go on. The session takes
    Python's own SIGINT handler back, so the processes it starts get the default."""
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        try:
            folder = Path(item.path).resolve().relative_to(TESTS).parts[0]
        except ValueError:
            continue
        if folder in NEEDS:
            item.add_marker(getattr(pytest.mark, folder))
        else:
            _elsewhere.append(item.nodeid)


def pytest_terminal_summary(terminalreporter) -> None:
    if _elsewhere:
        folders = sorted({n.split("/")[1] for n in _elsewhere if n.count("/") > 1} or {"tests"})
        terminalreporter.write_line(
            f"{len(_elsewhere)} tests outside tests/{{{','.join(NEEDS)}}} ({', '.join(folders)}) "
            "have no marker: move them by what they need (docs/testing.md)")
