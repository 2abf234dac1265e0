"""The maple tree oracle: our C driver (simulator/oracle/maple_oracle.c) compiled against a
kernel tree's lib/maple_tree.c with that tree's own userspace shims, built once per tree in
cache/oracle/<tree key>/, and run on an operation list.

Trees lay their userspace maple tree harness out differently, and the layout is read from the
files present, never from the version (harness_of()):
- "shared" (6.3 on): tools/testing/shared/ holds linux.c (kmem_cache), maple-shared.h and
  autoconf.h; tools/testing/radix-tree/ the rest.
- "radix-tree" (6.1, 6.2): everything is in tools/testing/radix-tree/ (linux.c there,
  generated/autoconf.h); its maple.c defines what lib/maple_tree.c needs before including it,
  which our simulator/oracle/radix-tree-layout/maple-shared.h repeats.
What the tree's maple_tree.c offers (__mt_dup(), mas_expected_entries()) is passed to the driver
as -DFD_HAVE_* (features_of()); an operation the tree cannot do is refused by the driver.

The kernel tree is only read (-I paths and the #included maple_tree.c); nothing is written
into it and no kernel code is copied into this repository."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .. import resources
from ..cache import atomic_write, cache_path, locked, sha256_file, sha256_text
from ..errors import ForkdiffError
from .tree import KernelTree, resolve_tree

ORACLE_DIR = resources.oracle_source().parent
DRIVER = ORACLE_DIR / "maple_oracle.c"
RADIX_TREE_SHIM = ORACLE_DIR / "radix-tree-layout"
CFLAGS = ["-O2", "-g", "-D_LGPL_SOURCE", "-Wno-unused-variable", "-Wno-unused-function"]
LIBS = ["-lurcu", "-lpthread"]
# maple_tree.c function -> driver macro (the operations that need it: simulator/maple/ops.py)
FEATURES = {"__mt_dup": "FD_HAVE_MT_DUP", "mas_expected_entries": "FD_HAVE_EXPECTED_ENTRIES"}
FEATURE_OPS = {"FD_HAVE_MT_DUP": ("dup",), "FD_HAVE_EXPECTED_ENTRIES": ("expect", "bstore", "bdestroy")}


@dataclass(frozen=True)
class Harness:
    """How to build the oracle against one tree."""

    layout: str  # "shared" | "radix-tree"
    sources: tuple[Path, ...]  # compiled next to the driver
    includes: tuple[Path, ...]  # -I, in order
    autoconf: Path  # the harness's autoconf.h (copied into generated/)
    features: tuple[str, ...]  # -D macros: what the tree's maple_tree.c offers


def features_of(maple_tree_c: str) -> tuple[str, ...]:
    """FD_HAVE_* for each function of FEATURES the tree's lib/maple_tree.c defines."""
    return tuple(macro for fn, macro in FEATURES.items()
                 if re.search(rf"^int {re.escape(fn)}\(", maple_tree_c, re.M))


def harness_of(root: Path) -> Harness:
    """The tree's userspace harness, from the files it has (see the module docstring)."""
    testing, tools = root / "tools/testing", root / "tools"
    maple = root / "lib/maple_tree.c"
    if not maple.is_file():
        raise ForkdiffError(f"{maple} is missing: cannot build the maple tree oracle",
                            "use a full kernel source tree (KERNEL_TREE=...)")
    text = maple.read_text(errors="replace")
    feats = features_of(text)
    if "kmem_cache_prefill_sheaf(" in text:  # 7.x: nodes from slab sheaves (see the driver)
        feats += ("FD_HAVE_SHEAVES",)
    arch = [tools / "arch/x86/include"] if (tools / "arch/x86/include").is_dir() else []
    if (testing / "shared/linux.c").is_file():
        header = testing / "shared/maple-shared.h"
        # 7.x's maple-shared.h names a kfree_rcu() callback its maple-shim.c defines; that file
        # compiles maple_tree.c a second time, so the driver defines the callback instead
        if header.is_file() and "maple_rcu_cb" in header.read_text(errors="replace"):
            feats += ("FD_DEFINE_MAPLE_RCU_CB",)
        return Harness("shared", (testing / "shared/linux.c", tools / "lib/slab.c"),
                       (testing / "shared", *arch, tools / "include", root / "lib",
                        testing / "radix-tree"),
                       testing / "shared/autoconf.h", feats)
    if (testing / "radix-tree/linux.c").is_file():
        return Harness("radix-tree", (testing / "radix-tree/linux.c", tools / "lib/slab.c"),
                       (RADIX_TREE_SHIM, testing / "radix-tree", *arch, tools / "include",
                        root / "lib"),
                       testing / "radix-tree/generated/autoconf.h", feats)
    raise ForkdiffError(f"{root} has neither tools/testing/shared/linux.c nor "
                        "tools/testing/radix-tree/linux.c: no userspace maple tree harness known",
                        "use a kernel tree from 6.1 on")


def _shim_files() -> list[Path]:
    return sorted(RADIX_TREE_SHIM.glob("*.h"))


def build_oracle(tree: KernelTree | None = None) -> Path:
    """Compile the oracle for `tree` (default: resolve_tree()) unless already built; return
    the binary's path. Errors (no compiler, no liburcu, a tree whose shims do not build)
    raise ForkdiffError naming the build log."""
    tree = tree or resolve_tree()
    root = tree.path
    h = harness_of(root)
    for src in (*h.sources, h.autoconf):
        if not src.is_file():
            raise ForkdiffError(f"{src} is missing: cannot build the maple tree oracle",
                                "use a full kernel source tree (KERNEL_TREE=...)")
    if shutil.which("cc") is None:
        raise ForkdiffError("no C compiler (cc) found", "run 'make setup' (installs build-essential)")
    key = sha256_text(tree.identity, sha256_file(DRIVER), *map(sha256_file, _shim_files()),
                      h.layout, " ".join(h.features), " ".join(CFLAGS))[:16]
    build = cache_path("oracle", tree.key)
    binary = build / f"maple_oracle-{key}"
    if binary.is_file():
        return binary
    with locked(f"oracle-{tree.key}"):
        if binary.is_file():
            return binary
        gen = build / "generated"
        gen.mkdir(exist_ok=True)
        atomic_write(gen / "autoconf.h", h.autoconf.read_text())
        atomic_write(gen / "bit-length.h", "#define CONFIG_64BIT 1\n#define CONFIG_PHYS_ADDR_T_64BIT 1\n")
        atomic_write(gen / "map-shift.h", "#define XA_CHUNK_SHIFT 3\n")
        tmp = build / f".{binary.name}.partial"
        includes = [f"-I{h.includes[0]}", f"-I{build}", f"-I{gen}", *(f"-I{p}" for p in h.includes[1:])]
        cmd = ["cc", *CFLAGS, *(f"-D{m}" for m in h.features), "-include", str(gen / "autoconf.h"),
               f'-DMAPLE_TREE_C="{root / "lib/maple_tree.c"}"', *includes,
               "-o", str(tmp), str(DRIVER), *map(str, h.sources), *LIBS]
        log = build / "build.log"
        with open(log, "w") as fh:
            fh.write(f"# harness layout: {h.layout}\n" + " ".join(cmd) + "\n")
            fh.flush()
            try:
                rc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, timeout=600).returncode
            except subprocess.TimeoutExpired:
                rc = -1
        if rc != 0 or not tmp.is_file():
            hint = ("install liburcu-dev ('make setup')"
                    if "urcu" in log.read_text(errors="replace") else "read the build log")
            raise ForkdiffError(f"building the maple tree oracle against {root} "
                                f"({h.layout} harness layout) failed", hint, log)
        tmp.rename(binary)
    return binary


def run_oracle_text(ops_text: str, tree: KernelTree | None = None, timeout: float = 900) -> list[dict]:
    """Run the oracle on an operation list (the text format of simulator.maple.ops) and return
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
