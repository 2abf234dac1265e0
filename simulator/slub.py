"""SLUB's fast and slow paths over the spawn loop (mm/slub.c, 6.12, one CPU, per-CPU partial
lists on): which allocations and frees of a cache take the lockless fast path, which take
___slab_alloc() / __slab_free(), how many slabs a fork takes new from the page allocator and
how many empty slabs are given back.

The spawn loop repeats one fork + the child's exit: the fork allocates n objects of a cache
(vm_area_dup(): one vm_area_struct and one vma_lock per copied VMA), the child's exit frees
them in the same order (exit_mmap()'s remove_vma() loop). The guest has one vCPU, so every
free runs on the CPU that allocated. Modelled, per cache (its geometry read from the booted
kernel's /sys/kernel/slab/<cache>/):

alloc  slab_alloc_node(): the fast path pops c->freelist (the CPU slab's free objects).
       When it is empty, ___slab_alloc(): the CPU slab is full (single CPU: nothing was
       freed to its slab->freelist), so it is dropped (DEACTIVATE_BYPASS: on no list); the
       next slab comes from the CPU partial list (its head), else get_partial_node() takes
       the node partial list's head as the CPU slab and moves the following ones to the CPU
       partial list (put_cpu_partial(drain=0)) until more than cpu_partial / 2 were moved,
       else new_slab() (allocate_slab()).
free   do_slab_free(): the fast path only when the object's slab is c->slab. Else
       __slab_free(): a slab that was full (no free object: prior == NULL) goes to the CPU
       partial list (put_cpu_partial(drain=1)); if that list already holds cpu_partial_slabs
       (= DIV_ROUND_UP(2 * cpu_partial, objs_per_slab)) slabs, the whole list is first moved
       to the node partial list by __put_partials(), which discards each empty slab once the
       node holds min_partial slabs. A free that empties a slab on the node partial list
       discards it when the node holds min_partial slabs or more; one on the CPU partial
       list stays there, empty.

`spawn_counts()` runs the loop from an empty cache until its per-fork counts repeat (the
steady state a long spawn loop measures) and returns them per fork."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache


@dataclass(frozen=True)
class SlabGeometry:
    """One cache of the booted kernel: /sys/kernel/slab/<cache>/{objs_per_slab, cpu_partial,
    min_partial, order}."""

    objs_per_slab: int
    cpu_partial: int  # objects (s->cpu_partial); 0: no per-CPU partial list
    min_partial: int
    order: int = 0

    @property
    def cpu_partial_slabs(self) -> int:
        """slub_set_cpu_partial(): DIV_ROUND_UP(cpu_partial * 2, objs_per_slab)."""
        return math.ceil(self.cpu_partial * 2 / self.objs_per_slab)

    @classmethod
    def from_dict(cls, d: dict) -> SlabGeometry:
        return cls(int(d["objs_per_slab"]), int(d["cpu_partial"]), int(d["min_partial"]),
                   int(d.get("order", 0)))


COUNTS = ("fast_allocs", "slow_allocs", "new_slabs", "fast_frees", "slow_frees", "discards",
          "drains")


class _Slab:
    __slots__ = ("free", "live", "on_node")

    def __init__(self, free: int) -> None:
        self.free = free  # objects on slab->freelist (not the CPU's c->freelist)
        self.live = 0  # objects allocated (inuse, for a slab that is not the CPU slab)
        self.on_node = False


class SlubCache:
    """One cache's CPU slab, CPU partial list and node partial list on one CPU."""

    def __init__(self, geo: SlabGeometry) -> None:
        self.geo = geo
        self.cpu: _Slab | None = None
        self.cpu_free = 0  # c->freelist
        self.cpu_partial: list[_Slab] = []  # head first
        self.node: list[_Slab] = []  # head first
        self.n = dict.fromkeys(COUNTS, 0)

    def alloc(self) -> _Slab:
        if self.cpu is not None and self.cpu_free:
            self.n["fast_allocs"] += 1
        else:
            self.n["slow_allocs"] += 1
            self._refill()
        self.cpu_free -= 1
        self.cpu.live += 1
        return self.cpu

    def _load(self, slab: _Slab) -> None:
        self.cpu, self.cpu_free, slab.free = slab, slab.free, 0

    def _refill(self) -> None:
        if self.cpu is not None and self.cpu.free:  # get_freelist(): objects freed to it
            self._load(self.cpu)
            return
        self.cpu = None  # DEACTIVATE_BYPASS: full, on no list
        if self.cpu_partial:
            self._load(self.cpu_partial.pop(0))
            return
        if self.node:
            first = self.node.pop(0)
            first.on_node = False
            moved = 0
            while self.node and self.geo.cpu_partial:
                s = self.node.pop(0)
                s.on_node = False
                self._put_cpu_partial(s, drain=False)
                moved += 1
                if moved > self.geo.cpu_partial // 2:
                    break
            self._load(first)
            return
        self.n["new_slabs"] += 1
        self._load(_Slab(self.geo.objs_per_slab))

    def free(self, slab: _Slab) -> None:
        if slab is self.cpu:
            self.n["fast_frees"] += 1
            self.cpu_free += 1
            slab.live -= 1
            return
        self.n["slow_frees"] += 1
        prior = slab.free > 0
        slab.free += 1
        slab.live -= 1
        if not prior and self.geo.cpu_partial:
            self._put_cpu_partial(slab, drain=True)
            return
        if slab.live == 0 and slab.on_node and len(self.node) >= self.geo.min_partial:
            self.node.remove(slab)
            slab.on_node = False
            self.n["discards"] += 1

    def _put_cpu_partial(self, slab: _Slab, drain: bool) -> None:
        if drain and len(self.cpu_partial) >= self.geo.cpu_partial_slabs:
            old, self.cpu_partial = self.cpu_partial, []
            self.n["drains"] += 1
            self._put_partials(old)
        self.cpu_partial.insert(0, slab)

    def _put_partials(self, slabs: list[_Slab]) -> None:
        for s in slabs:
            if s.live == 0 and len(self.node) >= self.geo.min_partial:
                self.n["discards"] += 1
            else:
                s.on_node = True
                self.node.append(s)

    def state(self) -> tuple:
        """What the next fork's counts depend on: the CPU slab's free objects and the free
        objects of each slab on the two lists, in order."""
        return (self.cpu_free, self.cpu.free if self.cpu else -1,
                tuple(s.free for s in self.cpu_partial), tuple(s.free for s in self.node))


def spawn_loop(geo: SlabGeometry, n: int, forks: int) -> list[dict[str, int]]:
    """The counts of each of `forks` iterations of: allocate n objects, free them in order,
    from an empty cache."""
    cache = SlubCache(geo)
    out = []
    for _ in range(forks):
        before = dict(cache.n)
        objs = [cache.alloc() for _ in range(n)]
        for s in objs:
            cache.free(s)
        out.append({k: cache.n[k] - before[k] for k in COUNTS})
    return out


@lru_cache(maxsize=4096)
def spawn_counts(geo: SlabGeometry, n: int, max_forks: int = 64) -> dict[str, float]:
    """Per fork, in the spawn loop's steady state: the loop is run from an empty cache until
    the cache's state at the start of a fork repeats; the counts are the mean over that
    cycle (a cycle of one fork, usually)."""
    if n <= 0:
        return dict.fromkeys(COUNTS, 0.0)
    cache = SlubCache(geo)
    seen: dict[tuple, int] = {}
    per_fork: list[dict[str, int]] = []
    for i in range(max_forks):
        st = cache.state()
        if st in seen:
            cycle = per_fork[seen[st]:]
            return {k: sum(c[k] for c in cycle) / len(cycle) for k in COUNTS}
        seen[st] = i
        before = dict(cache.n)
        objs = [cache.alloc() for _ in range(n)]
        for s in objs:
            cache.free(s)
        per_fork.append({k: cache.n[k] - before[k] for k in COUNTS})
    tail = per_fork[max_forks // 2:]
    return {k: sum(c[k] for c in tail) / len(tail) for k in COUNTS}
