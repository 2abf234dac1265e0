"""Where forkdiff's data is: the repository folders in a checkout, the `forkdiff_data` package
(and the simulator package's oracle/ folder) in an installed wheel, found with
importlib.resources. Every lookup of kconfig/, patches/, scenarios/, guest/ and
simulator/oracle/maple_oracle.c goes through this module.

A checkout is recognised by its pyproject.toml and kconfig/ beside the orchestrator package;
an editable install of one checkout must not make another checkout (a git worktree) read the
first one's data, so the checkout's own folders always win."""

from __future__ import annotations

import importlib.resources
from pathlib import Path

from .errors import ForkdiffError

DATA_PACKAGE = "forkdiff_data"
FOLDERS = ("kconfig", "patches", "scenarios", "guest")
_REPO = Path(__file__).resolve().parent.parent


def checkout_root() -> Path | None:
    """The repository this package was imported from, or None when installed."""
    if (_REPO / "pyproject.toml").is_file() and (_REPO / "kconfig").is_dir():
        return _REPO
    return None


def data_dir(name: str) -> Path:
    """kconfig, patches, scenarios or guest: the repository's folder, else the wheel's copy."""
    if name not in FOLDERS:
        raise ValueError(f"unknown data folder {name!r}")
    root = checkout_root()
    if root is not None:
        return root / name
    try:
        base = importlib.resources.files(DATA_PACKAGE)
    except ModuleNotFoundError:
        raise ForkdiffError(f"forkdiff's data ({name}/) is not installed: neither a checkout nor "
                            f"the {DATA_PACKAGE} package was found",
                            "reinstall forkdiff from its wheel or sdist, or run it from a checkout") from None
    path = Path(str(base)) / name
    if not path.is_dir():
        raise ForkdiffError(f"forkdiff's data folder {path} is missing from the installation",
                            "reinstall forkdiff from its wheel or sdist")
    return path


def oracle_source() -> Path:
    """The maple tree oracle's C driver (simulator/oracle/maple_oracle.c)."""
    return Path(str(importlib.resources.files("simulator"))) / "oracle" / "maple_oracle.c"


def guest_bin_dir() -> Path:
    """Where the guest programs are built: guest/bin in a checkout (`make guest`), else a cache
    folder keyed by the guest sources and the compiler (orchestrator.prepare.guest_cache)."""
    if checkout_root() is not None:
        return data_dir("guest") / "bin"
    from .prepare.guest_cache import cached_guest_bin

    return cached_guest_bin(data_dir("guest"))
