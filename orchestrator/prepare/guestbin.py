"""Guest programs (guest/bin/*) checked before they go into the initramfs: missing or out of
date ones are built with `make -C guest` (what `make guest` does), so a checkout where
`make guest` never ran does not boot a guest without its programs; a truncated or corrupt
binary is detected from its own ELF header (the section header table sits at the end of the
file, so any truncation cuts it off) and rebuilt the same way."""

from __future__ import annotations

import re
import struct
import subprocess
from pathlib import Path

from ..cache import locked, sha256_text
from ..errors import ForkdiffError


def elf_intact(path: Path) -> bool:
    """A 64-bit ELF whose program segments and section header table lie inside the file."""
    try:
        data = path.read_bytes()
    except OSError:
        return False
    if len(data) < 64 or data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        return False
    e_phoff, e_shoff = struct.unpack_from("<QQ", data, 32)
    e_phentsize, e_phnum, e_shentsize, e_shnum = struct.unpack_from("<HHHH", data, 54)
    end = e_phoff + e_phentsize * e_phnum
    if end > len(data) or e_shoff + e_shentsize * e_shnum > len(data):
        return False
    for i in range(e_phnum):
        _t, _f, p_offset, _va, _pa, p_filesz = struct.unpack_from("<IIQQQQ", data, e_phoff + i * e_phentsize)
        if p_offset + p_filesz > len(data):
            return False
    return True


def looks_broken(path: Path) -> bool:
    """Empty, or an ELF file that is not intact (scripts are taken as they are)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
    except OSError:
        return True
    return head == b"" or (head == b"\x7fELF" and not elf_intact(path))


def makefile_programs(src: Path) -> list[str]:
    """The programs a guest Makefile builds (its PROGS line); [] without such a Makefile."""
    try:
        text = (src / "Makefile").read_text()
    except OSError:
        return []
    m = re.search(r"^PROGS\s*:?=(.*)$", text, re.M)
    return m.group(1).split() if m else []


def _make(src: Path, why: str) -> None:
    try:
        r = subprocess.run(["make", "-s", "-C", str(src)], capture_output=True, text=True,
                           timeout=600)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ForkdiffError(f"cannot build the guest programs ({why}): {exc}",
                            "run 'make guest' (make setup installs the compiler)") from None
    if r.returncode != 0:
        raise ForkdiffError(f"building the guest programs ({why}) failed: "
                            f"{(r.stderr or r.stdout).strip()[-300:]}",
                            "run 'make guest' and fix what it reports")


def ensure_built(folder: Path) -> None:
    """Build the programs of the guest Makefile above `folder` (guest/bin -> guest/) when one
    is missing or older than its sources, as `make guest` would. A folder without such a
    Makefile above it is taken as it is."""
    src = folder.parent
    want = makefile_programs(src)
    if not want:
        return
    with locked(f"guest-build-{sha256_text(str(src.resolve()))[:16]}"):
        missing = [n for n in want if not (folder / n).is_file()]
        if missing:
            why = f"{', '.join(missing)} missing from {folder}"
        else:
            try:
                stale = subprocess.run(["make", "-q", "-s", "-C", str(src)], capture_output=True,
                                       timeout=60).returncode != 0
            except (OSError, subprocess.TimeoutExpired):
                stale = False  # make is missing: the programs that are there will do
            if not stale:
                return
            why = f"{folder} is older than the sources in {src}"
        print(f"forkdiff: building the guest programs ({why}): make -C {src}", flush=True)
        _make(src, why)
        still = [n for n in want if not (folder / n).is_file()]
        if still:
            raise ForkdiffError(f"make -C {src} did not produce {', '.join(still)} in {folder}",
                                "run 'make guest' and fix what it reports")


def programs(folder: Path) -> list[Path]:
    """The guest programs in `folder`, built first if missing or out of date (ensure_built),
    every one intact: broken ones are deleted and rebuilt with the Makefile of the folder above
    (guest/); still broken is an error."""
    ensure_built(folder)
    if not folder.is_dir():
        return []
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    broken = [p for p in files if looks_broken(p)]
    if not broken:
        return files
    src = folder.parent
    for p in broken:
        p.unlink()
    r = subprocess.run(["make", "-s", "-C", str(src)], capture_output=True, text=True, timeout=600)
    names = ", ".join(p.name for p in broken)
    if r.returncode != 0 or not all(p.is_file() and not looks_broken(p) for p in broken):
        raise ForkdiffError(f"guest program(s) {names} in {folder} were corrupt and could not be rebuilt: "
                            f"{(r.stderr or r.stdout).strip()[-300:]}", "run 'make -C guest clean all'")
    print(f"forkdiff: rebuilt corrupt guest program(s) {names}", flush=True)
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
