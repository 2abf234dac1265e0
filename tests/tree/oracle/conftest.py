from __future__ import annotations

from maple_compare import STATS


def pytest_terminal_summary(terminalreporter):
    if STATS["sequences"]:
        terminalreporter.write_line(
            f"oracle: {STATS['sequences']} maple tree sequences compared node for node "
            f"({STATS['dumps']} dumps), {STATS['mismatches']} mismatches")
