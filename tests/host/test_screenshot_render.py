"""tools/screenshot.py rendering for real: a REAL leak FAIL folder (tests/data/leak-vma-fail)
rendered here, its first screen a PNG by headless Chromium. Runs only where Chromium is installed
(`make screenshot` installs it; `make setup` does not)."""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

import pytest

from orchestrator.analysis.report import render
from tools import screenshot

DATA = Path(__file__).resolve().parents[1] / "data"


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
