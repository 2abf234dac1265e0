"""FAKE kernel trees for unit tests: just the files validate_tree and treefacts read."""

from __future__ import annotations

from pathlib import Path


def synthetic_tree(root: Path, fork_c: str, mmap_c: str = "", patchlevel: int = 2) -> Path:
    """A FAKE kernel tree: just the files validate_tree and treefacts read."""
    files = {"Makefile": f"VERSION = 7\nPATCHLEVEL = {patchlevel}\nSUBLEVEL = 13\nEXTRAVERSION =\n",
             "kernel/fork.c": fork_c, "mm/mmap.c": mmap_c,
             "lib/maple_tree.c": "static void f(void)\n{\n\tkmem_cache_prefill_sheaf(c, g, n);\n}\n",
             "include/linux/mm_types.h": "struct vm_area_struct {\n\trefcount_t vm_refcnt;\n};\n",
             "scripts/kconfig/merge_config.sh": "", "tools/testing/radix-tree/Makefile": ""}
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root
