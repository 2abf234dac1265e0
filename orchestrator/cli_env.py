"""The environment knobs of the kernel tree and patches (KERNEL_TREE=, PATCHES=), read by the
commands only: everything below a command is given them (orchestrator/conduct/plan.py)."""

from __future__ import annotations

import os
import shlex
from pathlib import Path


def tree_knob(given: str | None) -> str | None:
    """--tree, else $KERNEL_TREE, else None (Debian's linux-source-6.12)."""
    return given or os.environ.get("KERNEL_TREE") or None


def insn_profile_knob() -> bool:
    """INSN_PROFILE=1: spawn's timings judged by the kernels' instruction profiles."""
    return os.environ.get("INSN_PROFILE", "0") == "1"


def patches_raw(given: str | None) -> str:
    """--patches, else $PATCHES: the text naming patch files, mboxes or format-patch folders."""
    return given or os.environ.get("PATCHES") or ""


def patches_knob(given: list[Path] | tuple[Path, ...] = ()) -> list[Path]:
    """--patch files, else $PATCHES expanded (orchestrator/prepare/series.py)."""
    if given:
        return [Path(p) for p in given]
    from .prepare.series import expand

    return list(expand([Path(p).expanduser() for p in shlex.split(patches_raw(None))]).patches)
