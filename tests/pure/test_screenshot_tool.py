"""tools/screenshot.py: a report's first screen as a PNG by headless Chromium. The real
rendering runs only where Chromium is installed (`make screenshot` installs it; `make setup`
does not), on a REAL leak FAIL folder (tests/data/leak-vma-fail) rendered here."""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

import pytest

from orchestrator.analysis.report import render
from orchestrator.errors import ForkdiffError
from tools import screenshot

DATA = Path(__file__).resolve().parents[1] / "data"


def test_no_report_and_no_browser_are_clear_errors(tmp_path, monkeypatch):
    with pytest.raises(ForkdiffError, match="no report in"):
        screenshot.screenshot(tmp_path, tmp_path / "x.png")
    (tmp_path / "report.html").write_text("<p>x</p>")
    monkeypatch.setattr(screenshot.shutil, "which", lambda name: None)  # FAKE: no browser here
    with pytest.raises(ForkdiffError, match="no headless Chromium") as err:
        screenshot.screenshot(tmp_path, tmp_path / "x.png")
    assert "make screenshot" in err.value.next_step


@pytest.mark.skipif(not any(shutil.which(b) for b in screenshot.BROWSERS),
                    reason="no Chromium (make screenshot installs it)")
def test_the_leak_fail_report_as_a_png_of_the_first_screen(tmp_path):
    d = tmp_path / "leak"
    shutil.copytree(DATA / "leak-vma-fail", d)
    render(d)
    png = screenshot.screenshot(d, tmp_path / "shot.png", width=1000, height=700)
    head = png.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", head[16:24]) == (1000, 700)
