"""Default results folders: results/<timestamp>, made unique (…-2, …-3) and created with an
exclusive mkdir so two runs started in the same second never share one."""

from __future__ import annotations

import time
from pathlib import Path


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
