"""Results folders: the default results/<timestamp>, made unique (…-2, …-3) and created with an
exclusive mkdir so two runs started in the same second never share one; and a given --out/OUT=
checked before anything slow (a tree to unpack, a kernel to build) starts."""

from __future__ import annotations

import os
import time
from pathlib import Path

from ..errors import ForkdiffError


def new_results_dir(root: Path = Path("results")) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    root.mkdir(parents=True, exist_ok=True)
    for n in range(1, 1000):
        candidate = root / (stamp if n == 1 else f"{stamp}-{n}")
        try:
            candidate.mkdir()
        except FileExistsError:
            continue
        return candidate
    raise RuntimeError(f"no free results folder for {stamp} under {root}")


def writable_folder(out: Path) -> Path:
    """out, made if missing; a ForkdiffError at once when it cannot be (a file in the way, no
    permission), before a run unpacks a tree or builds a kernel for nothing."""
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        if not os.access(out, os.W_OK | os.X_OK):
            raise PermissionError(13, "Permission denied")
    except OSError as err:
        raise ForkdiffError(f"output folder {out} cannot be written ({err.strerror})",
                            "give --out (OUT=) a writable folder") from None
    return out
