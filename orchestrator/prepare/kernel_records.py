"""Which kernels a results folder's observations were made on: `<out>/kernels/<variant>-<profile>.json`,
written when a suite boots a variant's kernel (orchestrator.run.suites.run_variant), so that the folder
says, without the cache, what was built from what: the tree's identity, the patches (names and
sha256, in the order applied), what the variant is made of (`made_of`: the tree as it is, the
tree + patches/baseline/ or the tree + PATCHES), the kconfig fragments, the compiler, the .config's and the
bzImage's sha256. `forkdiff export kcidb` reads them (orchestrator/analysis/kcidb.py).

One file per variant and profile, written whole (atomic rename), so the worker threads of a
run, one per variant, never write the same file. A kernel without a build manifest (a
host-side unit test's fake kernel) is not recorded."""

from __future__ import annotations

import json
from pathlib import Path

from ..cache import atomic_write, sha256_file
from ..errors import ForkdiffError
from .kconfig import ARCH

FOLDER = "kernels"


def record_path(out: Path, variant: str, profile: str) -> Path:
    return Path(out) / FOLDER / f"{variant}-{profile}.json"


def kernel_record(kernel) -> dict | None:
    """The record of a built kernel (orchestrator.prepare.kernel.BuiltKernel), or None when it has
    no build manifest behind it."""
    m = getattr(kernel, "manifest", None) or {}
    if not m.get("key"):
        return None
    config = Path(kernel.config)
    return {
        "variant": kernel.variant, "profile": kernel.profile, "release": m["release"],
        "build_key": m["key"], "arch": ARCH,
        "tree": {"identity": m["tree"]["identity"], "version": m["tree"]["version"]},
        "patches": [{"name": p["name"], "sha256": p["sha256"]} for p in m.get("patches", [])],
        "fragments": [{"name": f["name"], "sha256": f["sha256"]} for f in m.get("fragments", [])],
        "compiler": m.get("gcc", ""),
        "config_sha256": sha256_file(config) if config.is_file() else "",
        "bzimage": {"sha256": m["bzimage"]["sha256"], "size": m["bzimage"]["size"]},
        "build_seconds": m.get("build_seconds"), "built_at": m.get("built_at", ""),
        "dup_mmap_model": m.get("dup_mmap_model", ""),
        # what the variant is built from (orchestrator/prepare/variants.py): e.g. 7.x's baseline
        # with PATCHES= is "the tree as it is", 6.12's "the tree + patches/baseline/"
        "made_of": getattr(kernel, "made_of", "") or m.get("made_of", ""),
    }


def record_kernel(out: Path, kernel) -> Path | None:
    """Write the kernel's record into the results folder; returns its path (None: not recorded)."""
    rec = kernel_record(kernel)
    if rec is None:
        return None
    path = record_path(out, kernel.variant, kernel.profile)
    atomic_write(path, json.dumps(rec, indent=1, sort_keys=True) + "\n")
    path.chmod(0o644)  # like the folder's other files (atomic_write's temporary file is 0600)
    return path


def read_records(out: Path) -> dict[tuple[str, str], dict]:
    """(variant, profile) -> record, for every kernel recorded in the folder."""
    found = {}
    for path in sorted((Path(out) / FOLDER).glob("*.json")):
        try:
            rec = json.loads(path.read_text())
            key = (rec["variant"], rec["profile"])
            rec["tree"]["identity"], rec["patches"], rec["config_sha256"]  # noqa: B018
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise ForkdiffError(f"kernel record {path} is unreadable ({type(err).__name__}: {err})",
                                "run the suites again into a fresh folder") from None
        found[key] = rec
    return found
