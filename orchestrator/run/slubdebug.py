"""The guest's slub_debug= boot parameter: which of fork's caches get which slub_debug flags,
composed into the one parameter the kernel reads, and read back from the running guest into
every record (`slab_debug`).

Two parts ask for flags:
- fault injection on a kernel whose failslab flag is read-only (6.1): 'A' on fork's caches
  (orchestrator/run/faultsetup.py boot_flags());
- exact allocation counts on a kernel whose SLUB_STATS miss bulk objects (kernel fact
  slub_bulk_stats false, 6.1: kmem_cache_alloc_bulk() takes the CPU free list's objects
  without a stat): 'F' (consistency checks) on the caches dup_mmap() allocates from in bulk
  (BULK_CACHES). F makes the cache a debug cache (kmem_cache_debug()), and where the tree's
  slow path hands a debug cache single objects without a CPU free list (kernel fact
  slub_debug_single: ___slab_alloc() returns what alloc_single_from_partial() or
  alloc_single_from_new_slab() take), kmem_cache_alloc_bulk() finds c->freelist empty for
  every object and calls ___slab_alloc(), one ALLOC_SLOWPATH each; a single allocation is one
  ALLOC_SLOWPATH too. So alloc_fastpath + alloc_slowpath count every object. F adds no
  metadata (same object size, objects per slab and order), should_failslab() stays one check
  per kmem_cache_alloc()/kmem_cache_alloc_bulk() call (slab_pre_alloc_hook(), before any slab
  path), and 'objects' stays the objects in use (total minus the free ones of partial slabs;
  a debug cache has no CPU slab, so nothing is hidden there). Perf kernels have no SLUB_STATS
  and get nothing.

6.1's setup_slub_debug() takes several blocks separated by ';' (`flags,cache,cache;...`), and
kmem_cache_flags() gives a cache the flags of the first block that names it: so a cache that
two parts flag gets the union in one block. Several slub_debug= words would not add up (the
last one wins)."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

# The caches dup_mmap() allocates from with kmem_cache_alloc_bulk(): maple nodes
# (mas_alloc_nodes(); the simulator's "bulk" events, simulator/maple/__init__.py, are all maple nodes).
BULK_CACHES = ("maple_node",)
STATS_FLAG = "F"  # SLAB_CONSISTENCY_CHECKS: a SLAB_DEBUG_FLAGS flag without object metadata
SLAB_SYSFS = "/sys/kernel/slab"
# /sys/kernel/slab/<cache>/ files of the SLAB_DEBUG_FLAGS flags (kmem_cache_debug())
DEBUG_FILES = ("sanity_checks", "red_zone", "poison", "store_user", "trace")


class _Result(Protocol):
    status: int
    stdout: str


class Runner(Protocol):
    def run(self, cmd: str, timeout: float = ...) -> _Result: ...


def _config(kernel) -> dict[str, str]:
    path = getattr(kernel, "config", None)
    if path is None or not Path(path).is_file():
        return {}
    out = {}
    for line in Path(path).read_text(errors="replace").splitlines():
        name, eq, value = line.partition("=")
        if eq and name.startswith("CONFIG_"):
            out[name] = value
    return out


def stats_flags(facts: dict | None, config: dict[str, str]) -> dict[str, str]:
    """{cache: "F"} for BULK_CACHES when the kernel's counters miss bulk objects
    (slub_bulk_stats false), its slow path gives a debug cache single objects
    (slub_debug_single true) and it has the counters and slub_debug= at all
    (CONFIG_SLUB_STATS, CONFIG_SLUB_DEBUG); {} otherwise (6.12, 7.2, perf kernels)."""
    facts = facts or {}
    if facts.get("slub_bulk_stats", True) is not False or facts.get("slub_debug_single") is not True:
        return {}
    if config.get("CONFIG_SLUB_STATS") != "y" or config.get("CONFIG_SLUB_DEBUG") != "y":
        return {}
    return dict.fromkeys(BULK_CACHES, STATS_FLAG)


def kernel_stats_flags(kernel, facts: dict | None) -> dict[str, str]:
    """stats_flags() of a built kernel (its .config) and its tree's facts."""
    return stats_flags(facts, _config(kernel))


def param(*parts: dict[str, str]) -> str:
    """One slub_debug= word from {cache: flags} maps: caches with the same union of flags
    share a block (blocks ordered by flags, caches in first-seen order); "" when no part asks
    for anything."""
    union: dict[str, str] = {}
    for part in parts:
        for cache, flags in part.items():
            have = union.get(cache, "")
            union[cache] = have + "".join(f for f in flags if f not in have)
    blocks: dict[str, list[str]] = {}
    for cache, flags in union.items():
        if flags:
            blocks.setdefault("".join(sorted(flags)), []).append(cache)
    if not blocks:
        return ""
    return "slub_debug=" + ";".join(f"{flags},{','.join(caches)}" for flags, caches in sorted(blocks.items()))


def read_back(g: Runner, caches: tuple[str, ...]) -> dict:
    """What the running guest has: the slub_debug= word of /proc/cmdline ("" without one)
    and which of `caches` are debug caches (any SLAB_DEBUG_FLAGS flag reads 1). Goes into
    every record as `slab_debug`; compare counts bulk objects exactly only in those caches."""
    flags = "".join(f"$(cat {SLAB_SYSFS}/$c/{f} 2>/dev/null)" for f in DEBUG_FILES)
    script = f"cat /proc/cmdline; for c in {' '.join(caches)}; do echo \"$c:{flags}\"; done"
    lines = g.run(script, timeout=30).stdout.splitlines()
    words = [w for w in (lines[0].split() if lines else []) if w.startswith("slub_debug=")]
    debug = [c for c, _, v in (ln.partition(":") for ln in lines[1:]) if c in caches and "1" in v]
    return {"boot_param": words[-1] if words else "", "debug_caches": debug}
