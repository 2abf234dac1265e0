"""tools/screenshot.py: a report's first screen as a PNG by headless Chromium: its errors without
a report or a browser. The real rendering needs Chromium, a host tool:
tests/host/test_screenshot_render.py."""

from __future__ import annotations

import pytest

from orchestrator.errors import ForkdiffError
from tools import screenshot


def test_no_report_and_no_browser_are_clear_errors(tmp_path, monkeypatch):
    with pytest.raises(ForkdiffError, match="no report in"):
        screenshot.screenshot(tmp_path, tmp_path / "x.png")
    (tmp_path / "report.html").write_text("<p>x</p>")
    monkeypatch.setattr(screenshot.shutil, "which", lambda name: None)  # FAKE: no browser here
    with pytest.raises(ForkdiffError, match="no headless Chromium") as err:
        screenshot.screenshot(tmp_path, tmp_path / "x.png")
    assert "make screenshot" in err.value.next_step
