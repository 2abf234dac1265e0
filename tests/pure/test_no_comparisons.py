"""A results folder from which nothing can be compared is an error with a non-zero exit, not
an empty PASS (a CI job must not go green on it). Folders made here by hand (fakes)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.analysis.compare import compare_dir
from orchestrator.errors import ForkdiffError

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("text", ["", "not json\n{broken\n", "[1, 2]\n"])
def test_unreadable_or_empty_observations_are_an_error(tmp_path: Path, text: str) -> None:
    (tmp_path / "observations.jsonl").write_text(text)
    with pytest.raises(ForkdiffError, match="no comparisons"):
        compare_dir(tmp_path)
    r = subprocess.run([sys.executable, "-m", "orchestrator", "compare", str(tmp_path)], cwd=REPO,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode != 0
    assert "no comparisons" in r.stderr + r.stdout and "Traceback" not in r.stderr
