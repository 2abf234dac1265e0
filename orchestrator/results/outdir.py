"""Results folders: the default results/<timestamp>, made unique (…-2, …-3) and created with an
exclusive mkdir so two runs started in the same second never share one; and a given --out/OUT=
checked before anything slow (a tree to unpack, a kernel to build) starts."""

from __future__ import annotations

import os
import time
from pathlib import Path

from ..errors import ForkdiffError
from .folder import OBSERVATIONS_JSONL


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


def run_folder(out: Path, resume: bool, records: str = OBSERVATIONS_JSONL) -> Path:
    """writable_folder(out) for a whole run: a folder that already holds another run's records
    is refused unless the run is resumed (RESUME=1), so that a second run never appends its
    records to the first one's and has both compared as one (nothing in it is touched)."""
    out = writable_folder(out)
    held = out / records
    if not resume and held.is_file() and held.stat().st_size > 0:
        with open(held, "rb") as fh:
            n = sum(1 for _ in fh)
        raise ForkdiffError(f"output folder {out} already holds a run ({n} records in {records})",
                            "give --out (OUT=) a new folder, or leave it out for results/<timestamp>; "
                            "RESUME=1 (--resume) continues that run")
    return out
