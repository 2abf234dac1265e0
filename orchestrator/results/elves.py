"""guest-elf.json: the program headers of the guest binaries a run's records were made with
(what the simulator needs of them: the child's first VMAs), kept in the results folder so that
comparing it again later does not depend on guest/bin/ still holding the same binaries."""

from __future__ import annotations

import json
from pathlib import Path

from simulator.exec_image import ElfInfo, Segment, read_elf

from .. import resources
from ..errors import ForkdiffError
from .folder import GUEST_ELF

GUEST_BIN_HOST = resources.guest_bin_dir()
GUEST_BIN_GUEST = "/usr/local/bin"


def guest_elf(program: str):
    """Program headers of the guest binary that ran (guest/bin/<program>, baked into the
    initramfs at /usr/local/bin): its PT_LOAD segments decide the child's first VMAs."""
    path = GUEST_BIN_HOST / program
    if not path.is_file():
        raise ForkdiffError(f"guest binary {path} is missing: the simulator needs its ELF headers",
                            "run 'make guest'")
    return read_elf(path, f"{GUEST_BIN_GUEST}/{program}")


ELF_FILE = GUEST_ELF


def save_elves(elves: dict[str, ElfInfo], path: Path) -> None:
    data = {name: {"path": e.path, "loads": [s.__dict__ for s in e.loads],
                   "relro": list(e.relro) if e.relro else None, "tls_memsz": e.tls_memsz,
                   "buffers": [list(b) for b in e.buffers]}
            for name, e in sorted(elves.items())}
    path.write_text(json.dumps(data, indent=1))


def load_elves(path: Path) -> dict[str, ElfInfo]:
    """The guest binaries' program headers kept with a results folder, so that comparing it
    again later does not depend on guest/bin/ still holding the same binaries."""
    if not path.is_file():
        return {}
    data = json.loads(path.read_text())
    return {name: ElfInfo(d["path"], tuple(Segment(**s) for s in d["loads"]),
                          tuple(d["relro"]) if d["relro"] else None, d["tls_memsz"],
                          tuple((n, a) for n, a in d.get("buffers") or ()))
            for name, d in data.items()}
