"""Maple tree benchmark: time and peak memory to build a 51,221-entry tree (the largest VMA
count of the seed's fork table) by appends and by random insertion, and to __mt_dup it.
Prints figures; asserts nothing about time."""

from __future__ import annotations

import random
import resource
import time
import tracemalloc

from simulator.maple import MapleTree

N = 51_221
PAGE = 4096
BASE = 0x10000


def _ranges(n: int) -> list[tuple[int, int]]:
    """1-page VMAs with 1-page holes between them, as a process with many VMAs looks."""
    return [(BASE + i * 2 * PAGE, BASE + i * 2 * PAGE + PAGE - 1) for i in range(n)]


def _measure(label: str, fn) -> object:
    """Time a plain run (wall and CPU: the CPU figure is steadier on a shared machine), then
    trace a second run for its peak Python heap."""
    c0 = time.process_time()
    t0 = time.perf_counter()
    result = fn()
    dt = time.perf_counter() - t0
    cpu = time.process_time() - c0
    tracemalloc.start()
    fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"  {label:<28} {dt:7.3f} s (cpu {cpu:6.3f} s)   peak heap {peak / 2**20:6.1f} MiB   "
          f"max RSS {rss:6.1f} MiB")
    return result


def build(order: list[int], ranges) -> MapleTree:
    t = MapleTree()
    for i in order:
        a, b = ranges[i]
        t.store_range(a, b, i + 1)
    return t


def main(n: int = N) -> int:
    ranges = _ranges(n)
    print(f"maple tree, {n} entries:")
    seq = list(range(n))
    t = _measure("build by appends", lambda: build(seq, ranges))
    shuffled = seq[:]
    random.Random(1).shuffle(shuffled)
    _measure("build by random insertion", lambda: build(shuffled, ranges))
    t2 = _measure("__mt_dup", t.dup)
    print(f"  tree: {t.node_count} nodes ({t.internal_count} internal, {t.leaf_count} leaves), "
          f"height {t.height}; dup allocation checks {t2.checks()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
