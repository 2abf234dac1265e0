"""Guest programs of an installed forkdiff: the wheel's guest sources are copied to
cache/guest/<key>/ (key: the sources' content and the compiler's identity) and built there on
first use by orchestrator.prepare.guestbin (`make -C` that folder), so a site-packages folder is never
written and a new compiler or source gets its own build. A checkout builds into guest/bin."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from ..cache import atomic_write, cache_path, locked, mark_used, sha256_file, sha256_text

SOURCE_SUFFIXES = (".c", ".h")


def source_files(src: Path) -> list[Path]:
    """The guest sources: the Makefile and every .c/.h file of the folder, sorted by name."""
    return sorted(p for p in src.iterdir()
                  if p.is_file() and (p.name == "Makefile" or p.suffix in SOURCE_SUFFIXES))


def compiler_identity(cc: str = "gcc") -> str:
    """`gcc --version`'s first line and target (the Makefile's default CC), or 'no compiler'."""
    try:
        version = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=30)
        target = subprocess.run([cc, "-dumpmachine"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "no compiler"
    return f"{version.stdout.splitlines()[0] if version.stdout else '?'} {target.stdout.strip()}"


def guest_key(src: Path, compiler: str | None = None) -> str:
    files = source_files(src)
    parts = [compiler or compiler_identity()]
    parts += [f"{p.name} {sha256_file(p)}" for p in files]
    return sha256_text(*parts)[:16]


def cached_guest_bin(src: Path) -> Path:
    """cache/guest/<key>/bin for the sources in `src`, the sources copied beside it (the
    programs themselves are built by guestbin.programs when first needed)."""
    key = guest_key(src)
    folder = cache_path("guest", key)
    with locked(f"guest-src-{key}"):
        for p in source_files(src):
            dst = folder / p.name
            if not dst.is_file() or sha256_file(dst) != sha256_file(p):
                atomic_write(dst, p.read_bytes())
        mark_used(folder)
    return folder / "bin"


def copy_tree(src: Path, dst: Path) -> None:
    """Copy a guest source folder without its build output (for tests of a fresh install)."""
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("bin"))
