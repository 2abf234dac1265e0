"""What a run's records were made with, kept in its folder so that shards of one run can be
checked before they are merged (orchestrator.run.merge): the guest binaries' SHA-256 (run.json
"guest binaries") and program headers (guest-elf.json, what the simulator needs of them), and
QEMU's version (run.json "qemu version")."""

from __future__ import annotations

import subprocess
from pathlib import Path

from ..cache import sha256_file
from ..vm.qemu_cmd import QEMU
from .elves import ELF_FILE, guest_elf, save_elves
from .meta import RunMeta

GUEST_BINARIES = "guest binaries"
QEMU_VERSION = "qemu version"


def qemu_version() -> str:
    try:
        r = subprocess.run([QEMU, "--version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unknown ({exc})"
    return r.stdout.splitlines()[0].strip() if r.stdout else f"unknown (status {r.returncode})"


def record(out: Path, meta: RunMeta) -> None:
    """Put the guest binaries' hashes and QEMU's version into `meta` (run.json "guest binaries",
    "qemu version") and the guest binaries' program headers into <out>/guest-elf.json."""
    from ..prepare.rootfs import guest_programs

    progs = guest_programs()
    meta.guest_binaries = {p.name: sha256_file(p) for p in progs}
    meta.qemu_version = qemu_version()
    save_elves({p.name: guest_elf(p.name) for p in progs}, Path(out) / ELF_FILE)
