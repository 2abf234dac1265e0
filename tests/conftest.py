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

import os
import shutil
import signal
import tempfile
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
NEEDS = ("pure", "host", "tree", "vm")
_elsewhere: list[str] = []
_HISTORY = pytest.StashKey[str]()

# `make test` runs the tree and VM tests side by side (pytest-xdist, `-n TEST_JOBS --dist
# loadfile --no-loadscope-reorder`: a file's tests stay in one worker, with its module's guests,
# and files are handed out in this order, not by their number of tests). Each worker starts with
# two files and takes the next when one ends, so the files that take longest go first, the two
# that compile a tree's first kernel at the head (one per worker): measured in a cold
# `make test` (docs/performance.md). Every other file keeps its place.
LONGEST_FIRST = (
    "vm/test_page_faults.py",  # 7.2's first kernel, the 7.2 and 6.12 page sweeps: 430-510 s
    "vm/test_page_faults_61.py",  # 6.1's first kernel and its page sweep: 308 s
    "vm/test_series_bisect.py",  # a 12-commit repository, its bisection, the series: 365-430 s
    "vm/test_planted_slowdown_72.py",  # the 7.2 reference kernel, timed: 92-128 s
    "vm/test_ab_slowdown.py",
    "vm/test_planted_slowdown.py",
    "vm/test_failure_path.py",
    "vm/test_observers.py",
    "vm/test_sharded_run.py",
)


def pytest_configure(config: pytest.Config) -> None:
    """A test session started in the background of a non-interactive shell (`make test &`,
    nohup) inherits SIGINT ignored, and so would every run a test starts: the tests that
    interrupt a run with SIGINT, as Ctrl-C does, then see it go on. The session takes
    Python's own SIGINT handler back, so the processes it starts get the default."""
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    # The runs tests start (vm-test, compare, report, series) record into a results database of
    # the session's own, never the user's (history.sqlite in the cache, or FORKDIFF_HISTORY_DB):
    # test runs are no part of the user's history, and a report's history section shows this
    # session's runs only. (The unit tests turn recording off: tests/pure/conftest.py.)
    folder = tempfile.mkdtemp(prefix="forkdiff-test-history-")
    os.environ["FORKDIFF_HISTORY_DB"] = str(Path(folder) / "history.sqlite")
    config.stash[_HISTORY] = folder


def pytest_unconfigure(config: pytest.Config) -> None:
    folder = config.stash.get(_HISTORY, None)
    if folder:
        shutil.rmtree(folder, ignore_errors=True)


def _rank(item: pytest.Item) -> int:
    try:
        rel = Path(item.path).resolve().relative_to(TESTS).as_posix()
    except ValueError:
        return len(LONGEST_FIRST)
    return LONGEST_FIRST.index(rel) if rel in LONGEST_FIRST else len(LONGEST_FIRST)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # stable: every other file keeps its place, after the long ones
    items.sort(key=_rank)
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
