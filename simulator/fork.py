"""dup_mmap() (kernel/fork.c) for the two variants, with the allocations it makes in order.

patched  = 6.12 as shipped: __mt_dup() copies the parent's tree (one allocation for the root,
           one bulk allocation per internal node for its children), then per VMA: VM_DONTCOPY
           -> vma_iter_clear_gfp() stores NULL over it (mas_store_gfp: GFP_NOWAIT first,
           GFP_KERNEL retry via mas_nomem(), so a single failure there is absorbed); else
           vm_area_dup(), anon_vma_fork(), vma_iter_bulk_store() (exact-fit replace, no
           allocation), copy_page_range(). On failure the current VMA (or, after a failed
           copy_page_range(), the next one) is overwritten with XA_ZERO_ENTRY and exit_mmap()
           stops there.
baseline = patches/baseline (the pre-series loop): mas_expected_entries(oldmm->map_count)
           preallocates, then one bulk store per copied VMA into the empty tree; VM_DONTCOPY
           VMAs are skipped; leftover nodes are freed by vma_iter_free(); on failure the tree
           holds only the completed copies.

Per copied VMA (both): vm_area_struct (GFP_KERNEL) + vma_lock (GFP_KERNEL, CONFIG_PER_VMA_LOCK,
vm_area_dup -> vma_lock_alloc); if the parent VMA has an anon_vma and is not VM_WIPEONFORK,
anon_vma_fork(): anon_vma_clone() allocates one anon_vma_chain per parent chain entry with
GFP_NOWAIT|__GFP_NOWARN, falling back to GFP_KERNEL (an injected failure is absorbed), then,
unless an anon_vma is reused (num_children < 2 and no active VMAs), an anon_vma and an
anon_vma_chain (both GFP_KERNEL, fatal); page-table pages in copy_page_range() only when
vma_needs_copy() (anon_vma, VM_PFNMAP or VM_MIXEDMAP) and the parent has the table there.

7.x (KernelConfig fields set from the tree's facts, simulator/runconfig.py): dup_mmap() is
in mm/mmap.c; no vma_lock (vm_refcnt is inside vm_area_struct); anon_vma_fork() allocates the
anon_vma and its chain before anon_vma_clone(), all GFP_KERNEL; maple nodes beyond one come
from slab sheaves (no check); every cache's first allocation after the guest's shrink kmallocs
an empty sheaf (a check), and so does the first maple node a store frees with kfree_rcu() (the
rcu_free sheaf: _Tracer.kfree_rcu_sheaf); the maple tree writes through struct maple_copy
(simulator.maple.write_copy); a failed fork is torn down inside dup_mmap() (no XA_ZERO_ENTRY).

fail-nth counts *checks*: should_failslab()/should_fail_alloc_page() calls that reach
should_fail_ex() (a bulk slab allocation is one check) and pass the stack filter; see
FaultSettings.counts().
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any

from .maple.core import ops_since as maple_ops_since
from .maple.core import ops_snapshot as maple_ops_snapshot
from .mm import (
    PGDIR_SHIFT,
    PMD_SHIFT,
    PUD_SHIFT,
    VM_DONTCOPY,
    VM_MIXEDMAP,
    VM_PFNMAP,
    VM_WIPEONFORK,
    AnonVma,
    Mm,
    Vma,
)

VARIANTS = ("baseline", "patched")  # the one list of kernel variants; orchestrator uses it too
GFP_KERNEL = "GFP_KERNEL"
GFP_NOWAIT = "GFP_NOWAIT|__GFP_NOWARN"
GFP_PGTABLE = "GFP_PGTABLE_USER"  # GFP_KERNEL | __GFP_ZERO | __GFP_ACCOUNT


# The slab caches fork() allocates from only inside dup_mmap(): kernel/fork.c copy_process()
# (6.1 and 6.12) takes its task_struct, creds, files, fs, sighand, signal, mm_struct, pid and
# namespace objects from other caches; vm_area_dup(), vma_lock_alloc(), anon_vma_fork() and the
# maple tree of the child's mm are dup_mmap()'s alone. The parent's path after fork() returns
# up to reading fail-nth back (faultsweep's armed_fork(): a pread) allocates from none of them.
DUP_MMAP_ONLY_CACHES = frozenset({"maple_node", "vm_area_struct", "vma_lock", "anon_vma",
                                  "anon_vma_chain"})


@dataclass(frozen=True)
class FaultSettings:
    """The fault-injection knobs that decide which allocations fail-nth counts.

    failslab_ignore_gfp_wait: /sys/kernel/debug/failslab/ignore-gfp-wait (kernel default Y)
    page_ignore_gfp_wait:     /sys/kernel/debug/fail_page_alloc/ignore-gfp-wait (default Y)
    page_min_order:           /sys/kernel/debug/fail_page_alloc/min-order (default 1)
    stack_filter:             "dup_mmap" when require-start/end bracket dup_mmap (only its
                              own allocations count), None when nothing filters (then checks
                              made by copy_process() before dup_mmap also count and are not
                              modelled: predictions say so), unless cache_filter confines
                              failslab to caches fork() allocates from only in dup_mmap().
    cache_filter:             the caches /sys/kernel/slab/<cache>/failslab flags when
                              failslab's cache-filter is Y (empty: every cache counts).
    slab_counted:             failslab counts at all (False: FAULTS=page, failslab's stack
                              range is empty, so no slab allocation is a check).
    page_stack_filter:        fail_page_alloc's own stack filter: "copy_page_range" when
                              FAULTS=...,page brackets it (only the child's page tables count;
                              page allocations elsewhere under dup_mmap, i.e. new slab pages,
                              do not), None otherwise (then, on a kernel without any stack
                              filter, every page allocation of the fork syscall counts:
                              page_scope "fork")."""

    failslab_ignore_gfp_wait: bool = True
    page_ignore_gfp_wait: bool = True
    page_min_order: int = 1
    stack_filter: str | None = "dup_mmap"
    cache_filter: tuple[str, ...] = ()
    slab_counted: bool = True
    page_stack_filter: str | None = None

    def counts(self, allocator: str, may_sleep: bool, order: int = 0) -> bool:
        """mm/failslab.c should_failslab() / mm/fail_page_alloc.c should_fail_alloc_page()
        up to should_fail_ex(): reclaim-capable allocations are skipped when ignore-gfp-wait
        is set; page allocations below min-order are skipped (the kernel's default min-order
        1 skips every page table, which is order 0). (No allocation here is __GFP_NOFAIL or
        __GFP_HIGHMEM, and the stack filters pass for everything under dup_mmap, and for the
        page tables under copy_page_range.)"""
        if allocator == "slab":
            return self.slab_counted and not (self.failslab_ignore_gfp_wait and may_sleep)
        if order < self.page_min_order:
            return False
        return not (self.page_ignore_gfp_wait and may_sleep)

    @property
    def page_scope(self) -> str | None:
        """Which page allocations fail-nth counts: None (none: min-order above the page
        tables' order 0, or ignore-gfp-wait Y), "copy_page_range" (its stack filter: the
        child's page tables alone), "fork" (no stack filter at all, x86-64 before 6.3: every
        page allocation of the fork syscall, FORK_PREFIX_PAGES before dup_mmap's page tables;
        new slab pages are kept out by the guest's set-up, orchestrator/run/faultsetup.py)."""
        if not any(self.counts("page", True, order) for order in (0, 2)):
            return None
        if self.page_stack_filter:
            return self.page_stack_filter
        return "fork" if self.stack_filter is None else None

    @property
    def modelled_prefix(self) -> bool:
        """fail-nth counts dup_mmap()'s checks and nothing else of fork(): under the dup_mmap
        stack filter, or, without one (x86-64 kernels before 6.3 have no
        FAULT_INJECTION_STACKTRACE_FILTER), with failslab's cache filter on caches that fork()
        allocates from only inside dup_mmap() (DUP_MMAP_ONLY_CACHES; page allocations are kept
        out by fail_page_alloc's min-order, which runconfig checks)."""
        if self.stack_filter == "dup_mmap":
            return True
        if self.stack_filter is None and not self.slab_counted:  # FAULTS=page: no slab check
            return self.page_scope in ("fork", "copy_page_range")
        return (self.stack_filter is None and bool(self.cache_filter)
                and set(self.cache_filter) <= DUP_MMAP_ONLY_CACHES)


SUITE_SETTINGS = FaultSettings(failslab_ignore_gfp_wait=False)  # our suites: ignore-gfp-wait N
# FAULTS=slab,page (orchestrator/run/faultsetup.py): fail_page_alloc min-order 0,
# ignore-gfp-wait N, its stack filter on copy_page_range
PAGE_SETTINGS = FaultSettings(failslab_ignore_gfp_wait=False, page_ignore_gfp_wait=False,
                              page_min_order=0, page_stack_filter="copy_page_range")

# The page allocations kernel/fork.c copy_process() makes before dup_mmap() (6.1; counted only
# with page_scope "fork"): dup_task_struct() -> alloc_thread_stack_node() (without
# CONFIG_VMAP_STACK: alloc_pages_node(THREADINFO_GFP, THREAD_SIZE_ORDER), order 2 on x86-64
# without KASAN), then copy_mm() -> dup_mm() -> mm_init() -> mm_alloc_pgd() -> pgd_alloc()
# (arch/x86/mm/pgtable.c _pgd_alloc(): __get_free_pages(GFP_PGTABLE_USER, PGD_ALLOCATION_ORDER),
# order 0 without PTI; no preallocated PMDs on x86-64). Either failing: copy_process() returns
# ENOMEM before dup_mmap() allocates anything. (site, gfp, order)
THREADINFO_GFP = "GFP_KERNEL_ACCOUNT|__GFP_ZERO"
FORK_PREFIX_PAGES = (("alloc_thread_stack_node", THREADINFO_GFP, 2),
                     ("pgd_alloc", GFP_PGTABLE, 0))


@dataclass(frozen=True)
class KernelConfig:
    """What the simulated kernel does where kernels differ. The defaults are 6.12 (Debian's
    linux-source-6.12); simulator/runconfig.py sets the fields from the kernel's kconfig and
    from facts read from its tree (orchestrator/prepare/treefacts.py), in one place.

    per_vma_lock:  CONFIG_PER_VMA_LOCK (kconfig/base.config sets it; needs SMP)
    vma_lock:      "cache": vm_area_dup() -> vma_lock_alloc() allocates a struct vma_lock from
                   its own cache (6.4 to 6.14); "embedded": the lock is vm_refcnt inside
                   vm_area_struct, nothing to allocate (7.x); "none": no per-VMA lock code
    fork_failure:  "marker": a failed dup_mmap() stores XA_ZERO_ENTRY at the failure point
                   and exit_mmap() stops there (6.12); "teardown": dup_mmap() itself unmaps
                   and frees the copies before the failure point (unmap_region(),
                   tear_down_vmas()) and destroys the tree (7.x, mm/mmap.c)
    maple_alloc:   how the maple tree gets nodes (simulator.maple.MapleTree; the parent's and
                   the child's trees follow it): "prealloc": mas_alloc_nodes() makes one
                   single and then bulk allocations (6.12); "ondemand": the write path asks
                   where it needs nodes (6.1); "sheaves": one node is mt_alloc_one(), more
                   come from a slab sheaf (kmem_cache_prefill_sheaf), which failslab never
                   checks (7.x)
    maple_write:   the maple tree's write path for splits, rebalances and spanning stores
                   (MapleTree(write=)): "big_node" (struct maple_big_node, 6.1 and 6.12) or
                   "maple_copy" (struct maple_copy, 7.x: simulator.maple.write_copy)
    anon_vma_fork: "clone_first": anon_vma_clone() (GFP_NOWAIT chains with a GFP_KERNEL
                   fallback), then the anon_vma and its chain (6.12); "alloc_first": the
                   anon_vma and its chain first, then anon_vma_clone() with GFP_KERNEL
                   chains, no fallback (7.x mm/rmap.c)
    vdso_vclock:   the x86 vDSO maps [vvar] (4 pages), [vvar_vclock] (2 pages) and [vdso]
                   (7.x) instead of [vvar] and [vdso] (6.12)
    slab_sheaves:  every slab cache allocates through per-CPU sheaves (7.x mm/slub.c); the
                   first kmem_cache_alloc() of a cache whose sheaves a shrink just emptied
                   kmallocs an empty sheaf: one more failslab check (see _Tracer.add)
    sheaf_kmalloc_counted: that kmalloc is a counted check (False with failslab's
                   cache-filter, which only counts the caches fork uses)"""

    per_vma_lock: bool = True
    vma_lock: str = "cache"
    fork_failure: str = "marker"
    maple_alloc: str = "prealloc"
    maple_write: str = "big_node"
    # pages of the x86-64 vDSO image (the built kernel's vdso-image-64.c: 6.12's builds 2,
    # 6.1's 1); exec places [vvar] and everything mapped later below it (exec_image.py)
    vdso_pages: int = 2
    # which VMAs /proc/pid/maps names [heap] (kernel fact proc_heap): "strict" (6.12) or
    # "inclusive" (6.1: also a VMA ending at start_brk, such as a static binary's bss)
    proc_heap: str = "strict"
    anon_vma_fork: str = "clone_first"
    vdso_vclock: bool = False
    slab_sheaves: bool = False
    sheaf_kmalloc_counted: bool = True

    def record(self) -> dict:
        """The prediction records' `kernel_config`: per_vma_lock, plus every field whose value
        is not 6.12's (so 6.12 predictions read as they always have)."""
        default = KernelConfig()
        return {k: v for k, v in asdict(self).items()
                if k == "per_vma_lock" or v != getattr(default, k)}

    @property
    def vma_lock_alloc(self) -> bool:
        """vm_area_dup() allocates a vma_lock (CONFIG_PER_VMA_LOCK with the vma_lock cache)."""
        return self.per_vma_lock and self.vma_lock == "cache"

    @property
    def maple_sheaves(self) -> bool:
        return self.maple_alloc == "sheaves"


@dataclass
class AllocEvent:
    """One allocation attempt dup_mmap() makes, in order."""

    seq: int  # 0-based position in the trace
    site: str  # kernel function that allocates
    cache: str  # slab cache, or "page" for the page allocator
    gfp: str
    kind: str  # "single" | "bulk" | "page"
    objects: int
    counted: bool  # does fail-nth count this check under the FaultSettings?
    on_fail: str  # "fatal" (fork fails with ENOMEM) | "absorbed" (a fallback retries)
    vma_index: int | None = None  # parent VMA being copied (position in the parent's list)
    vma_start: int | None = None
    level: str | None = None  # page tables: "pud" | "pmd" | "pte"
    check: int | None = None  # 1-based fail-nth number when counted
    frees: dict[str, int] = field(default_factory=dict)  # what the failure path frees

    def to_dict(self) -> dict:
        d = asdict(self)
        if d["vma_start"] is not None:
            d["vma_start"] = hex(d["vma_start"])
        return d


@dataclass
class ChildVma:
    start: int
    end: int
    perms: str
    offset: int
    file: bool
    name: str
    anon_vma: bool
    wipeonfork: bool


@dataclass
class ForkResult:
    variant: str
    parent_map_count: int
    child_map_count: int
    parent_total_vm: int
    child_total_vm: int
    child: list[ChildVma]
    trace: list[AllocEvent]
    ops: dict[str, int]
    child_tree: Any
    copied: list[int]  # parent VMA indices that were copied, in order
    parent_vmas: list[tuple[int, int]]  # (start, end) of every parent VMA, in order
    settings: FaultSettings
    tree_ops: list[tuple] = field(default_factory=list)  # maple_ops list building the child tree
    config: KernelConfig = field(default_factory=KernelConfig)

    @property
    def counted(self) -> list[AllocEvent]:
        return [e for e in self.trace if e.counted]


def _log(tree: Any, since: int = 0) -> list:
    log = getattr(tree, "alloc_log", []) or []
    return list(log[since:]) if since else list(log)


def _log_len(tree: Any) -> int:
    """len(_log(tree)) without copying the log (dup_mmap asks once per VMA)."""
    return len(getattr(tree, "alloc_log", []) or [])


def _set_rcu(tree: Any, on: bool) -> None:
    """mt_set_in_rcu()/mt_clear_in_rcu() when the tree supports it."""
    for name in ("set_in_rcu", "set_rcu"):
        fn = getattr(tree, name, None)
        if callable(fn):
            fn(on)
            return
    if hasattr(tree, "rcu"):
        tree.rcu = on


SHEAF_CACHE = "kmalloc"  # the kmalloc cache alloc_empty_sheaf() allocates a struct slab_sheaf from
GFP_SHEAF_RCU = "__GFP_NOWARN"  # __kfree_rcu_sheaf() -> alloc_empty_sheaf(): cannot sleep
MAPLE_SHEAF_CAPACITY = 32  # lib/maple_tree.c maple_tree_init(): .sheaf_capacity = 32
# mm/slab_common.c KFREE_DRAIN_JIFFIES (5 * HZ): the longest an object waits in kfree_rcu's
# batches before the monitor queues them for a grace period (a full batch goes sooner)
KFREE_DRAIN_MS = 5000


class _Tracer:
    def __init__(self, settings: FaultSettings, config: KernelConfig = KernelConfig()):
        self.settings = settings
        self.config = config
        self.trace: list[AllocEvent] = []
        self.checks = 0
        self.warm: set[str] = set()  # caches whose per-CPU sheaves hold objects (slab_sheaves)
        self.rcu_free: int | None = None  # maple_node's rcu_free sheaf: None, or its size

    def add(self, site: str, cache: str, gfp: str, kind: str, objects: int, on_fail: str,
            vma: tuple[int, Vma] | None = None, level: str | None = None,
            frees: dict[str, int] | None = None, order: int = 0) -> AllocEvent:
        allocator = "page" if cache == "page" else "slab"
        may_sleep = gfp != GFP_NOWAIT
        counted = kind != "sheaf" and self.settings.counts(allocator, may_sleep, order)
        e = self._event(site, cache, gfp, kind, objects, counted, on_fail, vma, level, frees)
        if kind == "single" and allocator == "slab" and self.config.slab_sheaves \
                and cache not in self.warm:
            self.empty_sheaf(cache, gfp, vma, level, frees)
        return e

    def empty_sheaf(self, cache: str, gfp: str, vma: tuple[int, Vma] | None, level: str | None,
                    frees: dict[str, int] | None) -> None:
        """7.x mm/slub.c slab_alloc_node(): should_failslab() for the cache, then
        alloc_from_pcs(). The guest programs shrink fork's caches right before the fork, and
        a shrink flushes every per-CPU sheaf (pcs_flush_all: the spare freed, the main
        emptied) and frees the barn's (barn_shrink). So a cache's first allocation finds an
        empty main, no spare and an empty barn: __pcs_replace_empty_main() ->
        alloc_empty_sheaf() kmallocs a struct slab_sheaf (one more failslab check, same gfp),
        refills it and keeps the old main as the spare. An injected failure there is
        absorbed: alloc_from_pcs() returns NULL and __slab_alloc_node() allocates from the
        slab. Later main refills reuse the spare and allocate nothing (refill_sheaf() has no
        failslab hook); kmem_cache_prefill_sheaf() takes that spare too."""
        self.warm.add(cache)
        counted = self.config.sheaf_kmalloc_counted and self.settings.counts(
            "slab", gfp != GFP_NOWAIT, 0)
        self._event("alloc_empty_sheaf", SHEAF_CACHE, gfp, "single", 1, counted, "absorbed",
                    vma, level, frees)

    def _event(self, site: str, cache: str, gfp: str, kind: str, objects: int, counted: bool,
               on_fail: str, vma: tuple[int, Vma] | None, level: str | None,
               frees: dict[str, int] | None) -> AllocEvent:
        e = AllocEvent(len(self.trace), site, cache, gfp, kind, objects, counted, on_fail,
                       vma[0] if vma else None, vma[1].start if vma else None, level,
                       None, dict(frees or {}))
        if counted:
            self.checks += 1
            e.check = self.checks
        self.trace.append(e)
        return e

    def kfree_rcu_sheaf(self, nodes: int, vma: tuple[int, Vma] | None) -> None:
        """7.x kvfree_call_rcu() of `nodes` maple nodes (ma_free_rcu()), one at a time:
        __kfree_rcu_sheaf() adds each to the CPU's rcu_free sheaf. The guest's shrink right
        before the fork took that sheaf (pcs_flush_all: rcu_free handed to call_rcu) and the
        barn's (barn_shrink), and the only spare is the one kmem_cache_prefill_sheaf() took
        for the store that frees (a split, rebalance or spanning store asks for 3 or more
        nodes; a child tree out of RCU mode frees nothing else through kfree_rcu). So the
        first node finds no rcu_free sheaf, no empty spare and no empty barn sheaf and
        kmallocs one: alloc_empty_sheaf(s, __GFP_NOWARN) in cache kmalloc, a failslab check
        that cannot sleep (counted even with ignore-gfp-wait). An injected failure is
        absorbed: the node goes to kfree_rcu's own batches (freed when they drain,
        KFREE_DRAIN_JIFFIES = 5 s later), and the next node tries again. A sheaf that
        reaches its capacity (32) goes to call_rcu() and the next node needs a new one. As
        on the allocation side (empty_sheaf), the trace is the undisturbed fork's: each
        kmalloc is taken to succeed."""
        for _ in range(nodes):
            if self.rcu_free is None:
                counted = self.config.sheaf_kmalloc_counted and self.settings.counts(
                    "slab", False, 0)
                self._event("kfree_rcu_sheaf", SHEAF_CACHE, GFP_SHEAF_RCU, "single", 1, counted,
                            "absorbed", vma, None, None)
                self.rcu_free = 0
            self.rcu_free += 1
            if self.rcu_free == MAPLE_SHEAF_CAPACITY:
                self.rcu_free = None

    def from_maple(self, records: list, site: str, gfp: str, on_fail: str,
                   vma: tuple[int, Vma] | None = None) -> tuple[int, int]:
        """Turn maple AllocRecords into events; returns (objects allocated, objects freed).
        "sheaf" records (nodes from a prefilled sheaf, 7.x) become events that are no check;
        "free_rcu" records (7.x kfree_rcu() of nodes) the rcu_free sheaf's kmallocs
        (kfree_rcu_sheaf) under slab_sheaves."""
        got = freed = 0
        for r in records:
            if r.kind == "free":
                freed += r.count
                continue
            if r.kind == "free_rcu":
                if self.config.slab_sheaves:
                    self.kfree_rcu_sheaf(r.count, vma)
                continue
            self.add(site, "maple_node", gfp, r.kind, r.count,
                     "none" if r.kind == "sheaf" else on_fail, vma,
                     frees={"maple_node": got})
            got += r.count
        return got, freed


def _pt_regions(v: Vma, shift: int) -> range:
    return range(v.start >> shift, ((v.end - 1) >> shift) + 1)


def dup_mmap(parent: Mm, variant: str, settings: FaultSettings = SUITE_SETTINGS,
             config: KernelConfig = KernelConfig(),
             tree_factory: Callable[[], Any] | None = None,
             replace_entries: bool = True) -> ForkResult:
    """Run dup_mmap() of `variant` on the parent mm (which is not modified).

    replace_entries=False skips the patched variant's per-VMA exact-fit stores on the child
    tree: they never allocate and never change its shape (lib/maple_tree.c mas_prealloc_calc():
    wr_exact_fit needs 0 nodes), so counts and the trace are the same; only the child tree's
    entries keep the parent's VMA ids. Used for speed on large VMA counts."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r} (one of {', '.join(VARIANTS)})")
    tr = _Tracer(settings, config)
    if settings.page_scope == "fork":  # copy_process()'s page allocations before dup_mmap()
        for site, gfp, order in FORK_PREFIX_PAGES:
            tr.add(site, "page", gfp, "page", 1, "fatal", order=order)
    maple_ops0 = maple_ops_snapshot()  # the maple write path's counters (cost model units)
    vmas = list(parent.vmas())
    ops = dict.fromkeys(("nodes_allocated", "alloc_calls", "nodes_copied", "nodes_freed",
                         "tree_stores", "tree_walk_levels", "null_stores", "vmas_copied",
                         "vmas_dontcopy", "vmas_wipeonfork", "anon_vma_forks", "avc_allocs",
                         "anon_vma_allocs", "anon_vma_reused", "file_vmas", "pt_pages",
                         "pt_vmas", "vma_allocs", "nodes_from_sheaf", "copy_stores_replayed",
                         "replay_walk_pivots"), 0)
    height = getattr(parent.tree, "height", 0) or 0

    if variant == "patched":
        before = len(_log(parent.tree))
        child_tree = parent.tree.dup(sheaves=True) if config.maple_sheaves else parent.tree.dup()
        tree_ops: list[tuple] = [("dup",), ("rcu", "off")]
        recs = _log(child_tree) or _log(parent.tree)[before:]
        got, _ = tr.from_maple(recs, "__mt_dup", GFP_KERNEL, "fatal")
        ops["nodes_allocated"] += got
        ops["nodes_copied"] = getattr(parent.tree, "node_count", got)
        ops["alloc_calls"] += sum(1 for r in recs if r.kind not in ("free", "free_rcu"))
        ops["nodes_from_sheaf"] += sum(r.count for r in recs if r.kind == "sheaf")
        _set_rcu(child_tree, False)
    else:
        # mm_init() gives the new tree MT_FLAGS_USE_RCU; the patch calls mas_expected_entries()
        # before mt_clear_in_rcu(), which does not change what it allocates.
        child_tree = (tree_factory or partial(type(parent.tree), alloc=config.maple_alloc,
                                                    write=config.maple_write))()
        _set_rcu(child_tree, False)
        child_tree.expected_entries(parent.map_count)
        tree_ops = [("tree", "norcu"), ("expect", parent.map_count)]
        recs = _log(child_tree)
        got, _ = tr.from_maple(recs, "mas_expected_entries", GFP_KERNEL, "fatal")
        ops["nodes_allocated"] += got

    child: list[ChildVma] = []
    copied: list[int] = []
    tables = ChildTables()
    child_total_vm = parent.total_vm
    new_id = max(parent.by_id, default=0) + 1
    for i, v in enumerate(vmas):
        at = (i, v)
        if v.flags & VM_DONTCOPY:
            ops["vmas_dontcopy"] += 1
            child_total_vm -= v.pages
            if variant == "patched":
                n0 = _log_len(child_tree)
                child_tree.store_range(v.start, v.end - 1, None)
                tree_ops.append(("store", v.start, v.end - 1, None))
                recs = _log(child_tree, n0)
                got, freed = tr.from_maple(recs, "vma_iter_clear_gfp", GFP_NOWAIT, "absorbed", at)
                ops["nodes_allocated"] += got
                ops["nodes_from_sheaf"] += sum(r.count for r in recs if r.kind == "sheaf")
                ops["nodes_freed"] += freed
                ops["null_stores"] += 1
                ops["tree_walk_levels"] += height
            continue
        vm_area_dup(tr, config, ops, at)
        wipe = bool(v.flags & VM_WIPEONFORK)
        has_anon = False
        if wipe:  # VM_WIPEONFORK: a clean slate, no anon_vma until the child faults
            ops["vmas_wipeonfork"] += 1
        elif v.anon_vma is not None:
            anon_vma_fork(tr, config, ops, at)
            has_anon = True
        # link into the tree
        if variant == "patched":
            n0 = _log_len(child_tree)
            if replace_entries:
                ops["copy_stores_replayed"] += 1  # simulator.work: counted by the tree
                r0 = maple_ops_snapshot()
                child_tree.replace_exact(v.start, v.end - 1, new_id)
                # replace_exact() walks from the root; the kernel's iterator stands on the
                # slot already (simulator.work takes these pivot steps back out)
                ops["replay_walk_pivots"] += maple_ops_since(r0)["walk_pivots"]
                tr.from_maple(_log(child_tree, n0), "vma_iter_bulk_store", GFP_NOWAIT,
                              "fatal", at)
            tree_ops.append(("replace", v.start, v.end - 1, new_id))
        else:
            n0 = _log_len(child_tree)
            child_tree.bulk_store(v.start, v.end - 1, new_id)
            tree_ops.append(("bstore", v.start, v.end - 1, new_id))
            got, _ = tr.from_maple(_log(child_tree, n0), "vma_iter_bulk_store", GFP_NOWAIT,
                                   "fatal", at)
            ops["nodes_allocated"] += got
        new_id += 1
        ops["tree_stores"] += 1
        ops["tree_walk_levels"] += height
        ops["vmas_copied"] += 1
        copied.append(i)
        if v.file is not None:
            ops["file_vmas"] += 1
        if not wipe:
            copy_page_range(tr, ops, parent, at, tables)
        child.append(ChildVma(v.start, v.end, v.perms,
                              (v.pgoff << 12) if v.file is not None else 0, v.file is not None,
                              parent.name_of(v), has_anon, wipe))

    if variant == "baseline":
        n0 = _log_len(child_tree)
        child_tree.destroy_bulk()
        tree_ops.append(("bdestroy",))
        ops["nodes_freed"] += sum(r.count for r in _log(child_tree, n0) if r.kind == "free")
    _set_rcu(child_tree, True)
    tree_ops.append(("rcu", "on"))
    ops.update(maple_ops_since(maple_ops0))
    ops["alloc_calls"] = sum(1 for e in tr.trace if e.cache == "maple_node")
    ops["child_nodes"] = getattr(child_tree, "node_count", 0)
    ops["child_height"] = getattr(child_tree, "height", 0)
    return ForkResult(variant, parent.map_count, len(copied), parent.total_vm, child_total_vm,
                      child, tr.trace, ops, child_tree, copied,
                      [(v.start, v.end) for v in vmas], settings, tree_ops, config)


def vm_area_dup(tr: _Tracer, config: KernelConfig, ops: dict, at: tuple[int, Vma]) -> None:
    """kernel/fork.c vm_area_dup(): the vm_area_struct, then (CONFIG_PER_VMA_LOCK)
    vma_lock_alloc()'s vma_lock; failing the lock frees the struct again. 7.x
    (mm/vma_init.c): the lock is vm_refcnt inside the struct (vma_lock_init()), nothing else
    is allocated (vma_pfnmap_track_ctx_dup() allocates only for a PAT-tracked pfnmap, which
    the guest programs never make)."""
    tr.add("vm_area_dup", "vm_area_struct", GFP_KERNEL, "single", 1, "fatal", at)
    ops["vma_allocs"] += 1
    if config.vma_lock_alloc:
        tr.add("vma_lock_alloc", "vma_lock", GFP_KERNEL, "single", 1, "fatal", at,
               frees={"vm_area_struct": 1})


def anon_vma_clone(tr: _Tracer, ops: dict, at: tuple[int, Vma]) -> AnonVma | None:
    """mm/rmap.c anon_vma_clone(): one anon_vma_chain per anon_vma of the parent VMA's chain
    (list_for_each_entry_reverse), each tried with GFP_NOWAIT|__GFP_NOWARN first and GFP_KERNEL
    after (an injected failure of the first is absorbed); returns the anon_vma it reuses (the
    first with no VMA and at most one child), if any."""
    reused = None
    for av in reversed(at[1].chain):
        tr.add("anon_vma_clone", "anon_vma_chain", GFP_NOWAIT, "single", 1, "absorbed", at)
        ops["avc_allocs"] += 1
        if reused is None and _reusable(av):
            reused = av
    return reused


def anon_vma_fork(tr: _Tracer, config: KernelConfig, ops: dict, at: tuple[int, Vma]) -> None:
    """mm/rmap.c anon_vma_fork() for a parent VMA with an anon_vma: anon_vma_clone(), then,
    unless an anon_vma was reused, a new anon_vma and its anon_vma_chain (GFP_KERNEL, fatal).
    A failure there frees, on dup_mmap()'s error path, the new VMA and its lock, the chains
    cloned so far and the new anon_vma."""
    ops["anon_vma_forks"] += 1
    if config.anon_vma_fork == "alloc_first":
        _anon_vma_fork_alloc_first(tr, ops, at)
        return
    reused = anon_vma_clone(tr, ops, at)
    if reused is not None:
        ops["anon_vma_reused"] += 1
        return
    cloned = len(at[1].chain)
    lock = {"vma_lock": 1} if config.vma_lock_alloc else {}
    tr.add("anon_vma_fork", "anon_vma", GFP_KERNEL, "single", 1, "fatal", at,
           frees={"vm_area_struct": 1, **lock, "anon_vma_chain": cloned})
    tr.add("anon_vma_fork", "anon_vma_chain", GFP_KERNEL, "single", 1, "fatal", at,
           frees={"vm_area_struct": 1, **lock, "anon_vma_chain": cloned, "anon_vma": 1})
    ops["anon_vma_allocs"] += 1
    ops["avc_allocs"] += 1


def _anon_vma_fork_alloc_first(tr: _Tracer, ops: dict, at: tuple[int, Vma]) -> None:
    """7.x mm/rmap.c anon_vma_fork(): anon_vma_alloc() and anon_vma_chain_alloc(GFP_KERNEL)
    first, then anon_vma_clone(VMA_OP_FORK): one anon_vma_chain per parent chain entry
    (list_for_each_entry, GFP_KERNEL, no fallback: a failure is fatal and
    cleanup_partial_anon_vmas() frees the chains made so far), then the reuse test over the
    new chain. Reused or failed, the preallocated anon_vma and chain are freed again
    (put_anon_vma, anon_vma_chain_free), so they are allocated either way. Every failure
    also frees the new VMA (dup_mmap(): fail_nomem_anon_vma_fork -> vm_area_free)."""
    tr.add("anon_vma_fork", "anon_vma", GFP_KERNEL, "single", 1, "fatal", at,
           frees={"vm_area_struct": 1})
    tr.add("anon_vma_fork", "anon_vma_chain", GFP_KERNEL, "single", 1, "fatal", at,
           frees={"vm_area_struct": 1, "anon_vma": 1})
    ops["anon_vma_allocs"] += 1
    ops["avc_allocs"] += 1
    reused = None
    for n in range(len(at[1].chain)):
        tr.add("anon_vma_clone", "anon_vma_chain", GFP_KERNEL, "single", 1, "fatal", at,
               frees={"vm_area_struct": 1, "anon_vma": 1, "anon_vma_chain": 1 + n})
        ops["avc_allocs"] += 1
    for av in at[1].chain:  # maybe_reuse_anon_vma() over the new chain, reversed
        if _reusable(av):
            reused = av
            break
    if reused is not None:
        ops["anon_vma_reused"] += 1


@dataclass
class ChildTables:
    """Page-table pages the child has so far, by the index of the region each one maps."""

    pud: set[int] = field(default_factory=set)
    pmd: set[int] = field(default_factory=set)
    pte: set[int] = field(default_factory=set)


def copy_page_range(tr: _Tracer, ops: dict, parent: Mm, at: tuple[int, Vma],
                    child: ChildTables) -> None:
    """mm/memory.c copy_page_range(), only when vma_needs_copy() (an anon_vma, VM_PFNMAP or
    VM_MIXEDMAP; never for VM_WIPEONFORK): a pud, pmd and pte table page for every region
    where the parent has one and the child does not have it yet (copy_p4d_range ->
    copy_pud_range -> copy_pmd_range -> copy_pte_range allocating on the way down)."""
    v = at[1]
    if not (v.anon_vma is not None or v.flags & (VM_PFNMAP | VM_MIXEDMAP)):
        return
    ops["pt_vmas"] += 1
    levels = (("pud", PGDIR_SHIFT, parent.pud_tables, child.pud),
              ("pmd", PUD_SHIFT, parent.pmd_tables, child.pmd),
              ("pte", PMD_SHIFT, parent.pte_tables, child.pte))
    _copy_tables(tr, ops, at, levels, None, None)


def _copy_tables(tr: _Tracer, ops: dict, at: tuple[int, Vma], levels: tuple, above: int | None,
                 above_shift: int | None) -> None:
    """One level of copy_page_range()'s descent: for each region of the VMA at this level
    (inside the region `above` of the level above) where the parent has a table, the child
    allocates one if it has none yet, then the level below."""
    (level, shift, parent_has, child_has), below = levels[0], levels[1:]
    for r in _pt_regions(at[1], shift):
        if (above_shift is not None and r >> (above_shift - shift) != above) or r not in parent_has:
            continue
        if r not in child_has:
            child_has.add(r)
            tr.add("copy_page_range", "page", GFP_PGTABLE, "page", 1, "fatal", at, level)
            ops["pt_pages"] += 1
        if below:
            _copy_tables(tr, ops, at, below, r, shift)


def _reusable(av: AnonVma) -> bool:
    """anon_vma_clone()'s reuse test: no VMA uses it and it has at most one child."""
    return av.num_children < 2 and av.num_active_vmas == 0


# ------------------------------------------------------------------ fault outcomes
def slab_objects(events: list[AllocEvent], kinds: tuple[str, ...] = ("single", "bulk"),
                 stats: bool = True) -> dict[str, int]:
    """Slab objects the events allocate as SLUB_STATS' alloc_fastpath + alloc_slowpath count
    them, per cache: page-allocator events left out, and (7.x) nodes taken from a prefilled
    sheaf (kmem_cache_alloc_from_sheaf() bumps no alloc counter) and the kmalloc'd empty
    sheaves (not one of the caches the guest reads). `kinds` ("bulk",): only those of bulk
    allocations (what a kernel whose SLUB_STATS miss bulk objects may not count: runconfig's
    bulk_counted). stats=False: every object of fork's caches, sheaf nodes included (what a
    teardown has to free)."""
    out: dict[str, int] = {}
    for e in events:
        if e.cache == "page" or e.cache == SHEAF_CACHE:
            continue
        if (e.kind == "sheaf" and not stats) or e.kind in kinds:
            out[e.cache] = out.get(e.cache, 0) + e.objects
    return out


def page_tables(events: list[AllocEvent]) -> dict[str, int]:
    """The child's page-table pages the events allocate, per level (pud, pmd, pte)."""
    out: dict[str, int] = {}
    for e in events:
        if e.cache == "page" and e.level:
            out[e.level] = out.get(e.level, 0) + 1
    return out


def _teardown(res: ForkResult, e: AllocEvent, released: int, mark_at: int | None) -> dict:
    """What the failure path frees once the k-th check fails at event `e`: the error path in
    dup_mmap()/anon_vma_fork() frees what the current VMA got so far (e.frees), then mmput()
    -> exit_mmap() releases the linked copies (remove_vma(): vm_area_struct, vma_lock through
    call_rcu; unlink_anon_vmas(): their anon_vma_chains and the anon_vmas that drop to zero)
    up to the XA_ZERO_ENTRY marker (patched) or the end of the copies (baseline), and
    __mt_destroy() frees every node of the child's tree (including the nodes the baseline
    preallocated and vma_iter_free() gave back). Nothing is left: net 0 in every cache.
    7.x (fork_failure "teardown"): dup_mmap() releases the same copies itself (unmap_region()
    and tear_down_vmas() up to the failure point's start, nothing when no VMA was written)
    and calls __mt_destroy(); exit_mmap() then finds an empty tree."""
    allocated = slab_objects(res.trace[:e.seq])
    error_path = {c: n for c, n in e.frees.items() if n}
    by_teardown = {c: n - error_path.get(c, 0)
                   for c, n in slab_objects(res.trace[:e.seq], stats=False).items()}
    first = res.parent_vmas[res.copied[0]][0] if released else None
    last = res.parent_vmas[res.copied[released - 1]][1] if released else None
    tables = page_tables(res.trace[:e.seq])
    return {"allocated": allocated, "allocated_in_bulk": slab_objects(res.trace[:e.seq], ("bulk",)),
            "page_tables_allocated": tables, "page_tables_freed": tables,
            "freed_by_error_path": error_path,
            "freed_by_teardown": {c: n for c, n in by_teardown.items() if n},
            "net": dict.fromkeys(allocated, 0),
            "teardown_range": [hex(first), hex(last)] if released else None,
            "stops_at": _stops_at(res, mark_at)}


def _stops_at(res: ForkResult, mark_at: int | None) -> str:
    if res.config.fork_failure == "teardown" and res.variant == "patched":
        return "failure point" if mark_at is not None else "end of the tree"
    return "XA_ZERO_ENTRY marker" if mark_at is not None else "end of the tree"


def _absorbed_reason(site: str) -> str:
    if site == "alloc_empty_sheaf":
        return ("kmalloc of an empty sheaf failed: alloc_from_pcs() gave up and "
                "__slab_alloc_node() allocated the object from the slab")
    if site == "kfree_rcu_sheaf":
        return ("kmalloc of an empty rcu_free sheaf failed: __kfree_rcu_sheaf() gave up and "
                "kvfree_call_rcu() queued the maple node in kfree_rcu's batches")
    return ("GFP_NOWAIT failed, the GFP_KERNEL retry succeeded "
            + ("(anon_vma_clone)" if site == "anon_vma_clone" else "(mas_store_gfp -> mas_nomem)"))


def outcome(res: ForkResult, k: int) -> dict:
    """What happens when fail-nth is armed with k (the k-th counted check fails)."""
    counted = res.counted
    out: dict = {"k": k, "variant": res.variant}
    if not res.settings.modelled_prefix:
        out["modelled"] = False
        out["why"] = ("without the dup_mmap stack filter, checks made by copy_process() "
                      "before dup_mmap also count; they are not modelled")
        return out
    if k > len(counted):
        out.update(injected=False, fork="success", errno=None, marker=None,
                   allocated=slab_objects(res.trace),
                   allocated_in_bulk=slab_objects(res.trace, ("bulk",)),
                   reason=f"only {len(counted)} counted checks: fail-nth not reached")
        return out
    e = counted[k - 1]
    out.update(injected=True, seq=e.seq, site=e.site, cache=e.cache, gfp=e.gfp, kind=e.kind,
               vma_index=e.vma_index, vma_start=hex(e.vma_start) if e.vma_start is not None else None,
               level=e.level)
    if e.on_fail == "absorbed":
        # the retry (GFP_KERNEL) allocates what the failed attempt did not: the fork allocates
        # what an undisturbed one does, and the child's exit frees all of it
        out.update(fork="success", errno=None, absorbed=True, marker=None,
                   frees={}, child_vmas_released=0, allocated=slab_objects(res.trace),
                   allocated_in_bulk=slab_objects(res.trace, ("bulk",)),
                   reason=_absorbed_reason(e.site))
        if e.site == "kfree_rcu_sheaf":
            # freed when kfree_rcu's batches drain (KFREE_DRAIN_JIFFIES, 5 s after the
            # kfree_rcu, then a grace period): still in use after the sweep's per-k leak wait
            out["pending"] = {"maple_node": 1}
            out["pending_until"] = "kfree_rcu batch drain (KFREE_DRAIN_JIFFIES = 5 s)"
            out["pending_ms"] = KFREE_DRAIN_MS
        return out
    out.update(fork="ENOMEM", errno="ENOMEM", absorbed=False, frees=dict(e.frees))
    parent_n = len(res.parent_vmas)
    if e.site in {site for site, _, _ in FORK_PREFIX_PAGES}:
        out.update(marker=None, child_vmas_released=0, **_teardown(res, e, 0, None),
                   reason=f"{e.site} failed: copy_process() returns ENOMEM before dup_mmap()")
        return out
    if e.site in ("__mt_dup", "mas_expected_entries"):
        out.update(marker=None, child_vmas_released=0, tree_nodes_freed=e.frees.get("maple_node", 0),
                   **_teardown(res, e, 0, None),
                   reason=f"{e.site} failed: the new tree is freed, no VMA was copied")
        return out
    i = e.vma_index
    assert i is not None
    done_before = sum(1 for j in res.copied if j < i)
    if e.site == "copy_page_range":
        released = done_before + 1  # the VMA is linked; its partial tables go with it
        mark_at = i + 1 if i + 1 < parent_n else None
    else:
        released = done_before
        mark_at = i
    if res.variant == "patched" and res.config.fork_failure == "teardown":
        out["marker"] = None
        out["reason"] = (f"{e.site} failed at VMA {i}: dup_mmap() unmaps and frees the "
                         f"{released} copies before the failure point (tear_down_vmas) and "
                         "destroys the tree")
    elif res.variant == "patched":
        if mark_at is None:
            out["marker"] = None
        else:
            s, t = res.parent_vmas[mark_at]
            out["marker"] = {"entry": "XA_ZERO_ENTRY", "start": hex(s), "end": hex(t),
                             "vma_index": mark_at}
        out["reason"] = (f"{e.site} failed at VMA {i}: exit_mmap() releases the {released} "
                         "copies before the failure point"
                         + ("" if mark_at is None else " and stops at the XA_ZERO_ENTRY marker"))
    else:
        out["marker"] = None
        out["reason"] = (f"{e.site} failed at VMA {i}: the child tree holds only the "
                         f"{released} completed copies, exit_mmap() releases them")
    out["child_vmas_released"] = released
    out.update(_teardown(res, e, released, mark_at if res.variant == "patched" else None))
    return out


def outcomes(res: ForkResult) -> list[dict]:
    """Outcomes for k = 1 .. (counted checks + 1); the last one is 'not reached'."""
    return [outcome(res, k) for k in range(1, len(res.counted) + 2)]
