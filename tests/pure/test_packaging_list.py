"""pyproject.toml lists its packages by hand (setuptools' [tool.setuptools] packages): every
Python package folder of simulator/ and orchestrator/ must be in that list, or the installed
wheel lacks it (tests/vm/test_installed_wheel.py finds that only after building a wheel)."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_package_folder_is_listed():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts)
             for top in ("simulator", "orchestrator") for p in (ROOT / top).rglob("__init__.py")}
    assert found and sorted(found - listed) == []
