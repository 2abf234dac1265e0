"""The user cache ($XDG_CACHE_HOME/forkdiff): locations, locks, content hashes, atomic writes."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


def cache_dir() -> Path:
    """Root of the cache: $FORKDIFF_CACHE, else $XDG_CACHE_HOME/forkdiff, else ~/.cache/forkdiff."""
    explicit = os.environ.get("FORKDIFF_CACHE")
    if explicit:
        root = Path(explicit)
    else:
        xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        root = Path(xdg) / "forkdiff"
    root.mkdir(parents=True, exist_ok=True)
    return root


def cache_path(*parts: str) -> Path:
    """A folder inside the cache, created if needed."""
    p = cache_dir().joinpath(*parts)
    p.mkdir(parents=True, exist_ok=True)
    return p


@contextlib.contextmanager
def locked(name: str) -> Iterator[Path]:
    """Exclusive inter-process lock on cache/locks/<name>.lock (blocks until free)."""
    lock = cache_path("locks") / f"{name}.lock"
    with open(lock, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield lock
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def held(name: str) -> bool:
    """Whether another process holds locked(name) now (a probe: never waits)."""
    lock = cache_path("locks") / f"{name}.lock"
    if not lock.is_file():
        return False
    with open(lock, "a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(fh, fcntl.LOCK_UN)
        return False


LAST_USED = ".forkdiff-last-used"


def mark_used(folder: Path) -> None:
    """Record that a cache entry was used now (its LAST_USED file's mtime): prune keeps it."""
    with contextlib.suppress(OSError):
        (folder / LAST_USED).touch()


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_text(*parts: str | bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode() if isinstance(part, str) else part)
        h.update(b"\0")
    return h.hexdigest()


def atomic_write(path: Path, data: bytes | str) -> None:
    """Write via a temporary file in the same folder and rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = data.encode() if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(raw)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
