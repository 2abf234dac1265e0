"""The maple tree oracle: our C driver (simulator/oracle/maple_oracle.c) compiled against a
kernel tree's lib/maple_tree.c with the userspace shims of tools/testing/{shared,radix-tree},
built once per tree in cache/oracle/<tree key>/, and run on an operation list.

The kernel tree is only read (-I paths and the #included maple_tree.c); nothing is written
into it and no kernel code is copied into this repository."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from . import resources
from .cache import atomic_write, cache_path, locked, sha256_file, sha256_text
from .errors import ForkdiffError
from .tree import KernelTree, resolve_tree

DRIVER = resources.oracle_source()
CFLAGS = ["-O2", "-g", "-D_LGPL_SOURCE", "-Wno-unused-variable", "-Wno-unused-function"]
LIBS = ["-lurcu", "-lpthread"]


def _sources(tree: Path) -> list[Path]:
    return [tree / "tools/testing/shared/linux.c", tree / "tools/lib/slab.c"]


def build_oracle(tree: KernelTree | None = None) -> Path:
    """Compile the oracle for `tree` (default: resolve_tree()) unless already built; return
    the binary's path. Errors (no compiler, no liburcu, a tree whose shims do not build)
    raise ForkdiffError naming the build log."""
    tree = tree or resolve_tree()
    root = tree.path
    for src in [root / "lib/maple_tree.c", *_sources(root)]:
        if not src.is_file():
            raise ForkdiffError(f"{src} is missing: cannot build the maple tree oracle",
                                "use a full kernel source tree (KERNEL_TREE=...)")
    if shutil.which("cc") is None:
        raise ForkdiffError("no C compiler (cc) found", "run 'make setup' (installs build-essential)")
    key = sha256_text(tree.identity, sha256_file(DRIVER), " ".join(CFLAGS))[:16]
    build = cache_path("oracle", tree.key)
    binary = build / f"maple_oracle-{key}"
    if binary.is_file():
        return binary
    with locked(f"oracle-{tree.key}"):
        if binary.is_file():
            return binary
        gen = build / "generated"
        gen.mkdir(exist_ok=True)
        atomic_write(gen / "autoconf.h", (root / "tools/testing/shared/autoconf.h").read_text())
        atomic_write(gen / "bit-length.h", "#define CONFIG_64BIT 1\n")
        atomic_write(gen / "map-shift.h", "#define XA_CHUNK_SHIFT 3\n")
        tmp = build / f".{binary.name}.partial"
        cmd = ["cc", *CFLAGS, "-include", str(gen / "autoconf.h"),
               f'-DMAPLE_TREE_C="{root / "lib/maple_tree.c"}"',
               f"-I{root / 'tools/testing/shared'}", f"-I{build}", f"-I{gen}",
               f"-I{root / 'tools/include'}", f"-I{root / 'lib'}",
               f"-I{root / 'tools/testing/radix-tree'}",
               "-o", str(tmp), str(DRIVER), *map(str, _sources(root)), *LIBS]
        log = build / "build.log"
        with open(log, "w") as fh:
            fh.write(" ".join(cmd) + "\n")
            fh.flush()
            try:
                rc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, timeout=600).returncode
            except subprocess.TimeoutExpired:
                rc = -1
        if rc != 0 or not tmp.is_file():
            hint = ("install liburcu-dev ('make setup')"
                    if "urcu" in log.read_text(errors="replace") else "read the build log")
            raise ForkdiffError(f"building the maple tree oracle against {root} failed", hint, log)
        tmp.rename(binary)
    return binary


def run_oracle_text(ops_text: str, tree: KernelTree | None = None, timeout: float = 900) -> list[dict]:
    """Run the oracle on an operation list (the text format of simulator.maple_ops) and return
    its output lines parsed as JSON (dumps and dup results, in order)."""
    return [json.loads(line) for line in run_oracle_raw(ops_text, tree, timeout).splitlines() if line]


def run_oracle_raw(ops_text: str, tree: KernelTree | None = None, timeout: float = 900) -> str:
    binary = build_oracle(tree)
    try:
        proc = subprocess.run([str(binary)], input=ops_text, capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        raise ForkdiffError(f"the maple tree oracle did not finish within {timeout:.0f} s",
                            "give it a shorter operation list") from None
    if proc.returncode != 0:
        log = cache_path("oracle") / "last-failure.log"
        atomic_write(log, proc.stderr)
        raise ForkdiffError(f"the maple tree oracle exited with status {proc.returncode}: "
                            f"{proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else 'no message'}",
                            "check the operation list", log)
    return proc.stdout
