"""What the cache holds and what `forkdiff cache prune` may remove.

Entries and when they go (each with the lock its builder takes, so a run building or using
it at the same moment is never cut short):
    kernels/<key> + its build folder   not used for DAYS (a failed or stale build: no manifest)
    src/<srckey> (tree copy + builds)  not used for DAYS by any kernel
    src/<srckey>/o-<key>               a build folder whose kernel entry is gone or unbuilt
    bisect/<key> (tree copy + builds)  not used for DAYS (forkdiff bisect-run's mirror)
    rootfs/<hash>                      not used for DAYS and not rootfs/latest
    logs/vm/<guest>                    older than DAYS
    predictions/<digest>.pickle        not used for DAYS (simulator predictions kept on disk)
"Used" is the mtime of the entry's LAST_USED file (orchestrator.cache.mark_used, touched on
every cache hit), else of the folder. ccache bounds itself; the unpacked default tree, keys and
the oracle build are kept."""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from .cache import LAST_USED, cache_dir, locked

DAY = 86400.0


@dataclass(frozen=True)
class Entry:
    path: Path
    kind: str
    lock: str | None  # cache lock to hold while removing
    last_used: float  # epoch seconds
    size: int  # bytes


def tree_size(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_size
            except OSError:
                pass
    return total


def last_used(folder: Path) -> float:
    for p in (folder / LAST_USED, folder):
        try:
            return p.stat().st_mtime
        except OSError:
            continue
    return 0.0


def usage(root: Path | None = None) -> dict[str, int]:
    """Bytes per top-level area of the cache."""
    root = root or cache_dir()
    return {p.name: tree_size(p) if p.is_dir() else p.stat().st_size for p in sorted(root.iterdir())}


def _kernel_build_dirs(root: Path) -> dict[str, Path | None]:
    """kernel key -> its build folder (from the manifest), None when it has no manifest."""
    out: dict[str, Path | None] = {}
    for kdir in sorted((root / "kernels").glob("*")):
        try:
            out[kdir.name] = Path(json.loads((kdir / "manifest.json").read_text())["build_dir"])
        except (OSError, ValueError, KeyError, TypeError):
            out[kdir.name] = None
    return out


def candidates(days: float, root: Path | None = None, now: float | None = None) -> list[Entry]:
    """Entries prune would remove, oldest first."""
    root = root or cache_dir()
    now = time.time() if now is None else now
    cutoff = now - days * DAY
    found: list[Entry] = []
    kernels = _kernel_build_dirs(root)
    removed_kernels = set()
    for key, build in kernels.items():
        kdir = root / "kernels" / key
        if last_used(kdir) < cutoff:
            removed_kernels.add(key)
            found.append(Entry(kdir, "kernel", f"kernel-{key}", last_used(kdir), tree_size(kdir)))
            # a bisection's build folder is shared by all its kernels: it goes with its mirror
            if (build is not None and build.is_dir() and root in build.parents
                    and root / "bisect" not in build.parents):
                found.append(Entry(build, "kernel build", f"kernel-{key}", last_used(kdir), tree_size(build)))
    for src in sorted((root / "src").glob("*")):
        used = max([last_used(src)] + [last_used(root / "kernels" / o.name[2:]) for o in src.glob("o-*")
                                       if o.name[2:] not in removed_kernels])
        if used < cutoff:
            found = [e for e in found if src not in e.path.parents]
            found.append(Entry(src, "source copy", f"src-{src.name}", used, tree_size(src)))
            continue
        for obj in sorted(src.glob("o-*")):
            key = obj.name[2:]
            if key not in kernels or (kernels[key] is None and key not in removed_kernels
                                      and last_used(obj) < cutoff):
                found.append(Entry(obj, "orphan build", f"kernel-{key}", last_used(obj), tree_size(obj)))
    for mirror in sorted((root / "bisect").glob("*")):
        if mirror.is_dir() and last_used(mirror) < cutoff:
            found.append(Entry(mirror, "bisect copy and build", f"bisect-{mirror.name}",
                               last_used(mirror), tree_size(mirror)))
    latest = (root / "rootfs" / "latest").resolve() if (root / "rootfs" / "latest").exists() else None
    for r in sorted((root / "rootfs").glob("*")):
        if r.is_symlink() or r.name.startswith(".") or r.resolve() == latest or last_used(r) >= cutoff:
            continue
        found.append(Entry(r, "rootfs", f"rootfs-{r.name}", last_used(r), tree_size(r)))
    for pred in sorted((root / "predictions").glob("*.pickle")):  # analysis/prediction_cache.py
        if last_used(pred) < cutoff:
            found.append(Entry(pred, "predictions", None, last_used(pred), pred.stat().st_size))
    for log in sorted((root / "logs" / "vm").glob("*")):
        if last_used(log) < cutoff:
            found.append(Entry(log, "guest log", None, last_used(log), tree_size(log)))
    return sorted(found, key=lambda e: e.last_used)


def remove(entry: Entry) -> None:
    """Remove one entry under its lock (blocks while a run builds or checks it)."""
    if entry.lock is None:
        if entry.path.is_file():
            entry.path.unlink(missing_ok=True)
        else:
            shutil.rmtree(entry.path, ignore_errors=True)
        return
    with locked(entry.lock):
        shutil.rmtree(entry.path, ignore_errors=True)
