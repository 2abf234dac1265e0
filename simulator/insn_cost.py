"""The instruction model: instructions per fork = sum over kernel functions g of
sum_f c_{g,f} * work_f, one sub-model per function (group of kernel symbols) over the
simulator's work counts (simulator.work.fork_work: what the simulator counts, never a
measurement), with per-kernel non-negative costs c_{g,f} fitted on that kernel's measured
instructions per function and fork (the QEMU instruction-count plugin's profile of the
calibration layouts and the seed's spawn layout: orchestrator.run.insnprofile).

Under -icount shift=0 an instruction is a nanosecond of guest time, so the model's
instructions per fork give forks/s = 1e9 / instructions (times the profile's measured
ns_per_insn, 1.0 to within the window's edges).

Each function's sub-model uses only the work counts that drive it (FUNCTIONS), so it has few
costs and each is fitted on the layouts that move it. Every sub-model is fitted on the
RELATIVE error of the layout's whole fork (the function's residual divided by the layout's
total instructions per fork), so a function that is 1% of a fork weighs 1% of it.

The slab sub-model's slub_* counts (SLUB's fast and slow paths, new slabs, discards, drains
per fork: simulator.slub) are not in the work dict: the model adds them from the kernel's
slab geometry (InsnModel.slab_geometry, read from /sys/kernel/slab in the profile's boot) for
every work dict it fits or predicts (slub_work).

Leave-one-layout-out (LOLO): every layout family (each calibration layout; the seed's spawn
layout at all its counts together) is dropped, every sub-model refitted on the rest, and the
family's total instructions predicted; its error is what the model makes on a layout it
never saw. `by_function` gives each function's share of that error."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from .slub import COUNTS as SLUB_COUNTS
from .slub import SlabGeometry, spawn_counts

# cache -> the work count (simulator.work.fork_work) that is its objects allocated per fork
# and freed by the child's exit: vm_area_dup() (a vm_area_struct and, on 6.12, a vma_lock
# per copied VMA; remove_vma() frees both), anon_vma_fork() / unlink_anon_vmas()
SLUB_CACHES = {"vm_area_struct": "vmas_copied", "vma_lock": "vmas_copied",
               "anon_vma_chain": "avc_allocs", "anon_vma": "anon_vma_allocs"}


def slub_work(work: Mapping[str, float], geometry: Mapping[str, Mapping] | None
              ) -> dict[str, float]:
    """The slub_* counts of one fork (simulator.slub.spawn_counts summed over SLUB_CACHES)
    from the booted kernel's geometry ({cache: /sys/kernel/slab attributes}, recorded with
    the instruction profile). A cache without geometry (not recorded, or not in this kernel:
    7.x has no vma_lock cache) is counted as if every allocation and free took the fast
    path: the slab sub-model is then linear in its objects, as it was before the geometry
    was recorded."""
    out = {f"slub_{k}": 0.0 for k in SLUB_COUNTS}
    geometry = geometry or {}
    for cache, feature in SLUB_CACHES.items():
        n = int(round(float(work.get(feature, 0))))
        g = geometry.get(cache)
        if g is None:
            if geometry:
                continue  # the kernel has no such cache (the others' geometry was read)
            out["slub_fast_allocs"] += n
            out["slub_fast_frees"] += n
            continue
        for k, v in spawn_counts(SlabGeometry.from_dict(g), n).items():
            out[f"slub_{k}"] += v
    return out

# function -> (symbol pattern, work counts of simulator.work.fork_work that drive it).
# Symbols are matched in order; the first match wins; "[user]" is the guest program's own
# code (the spawn loop, the child's _exit); what matches nothing is "other" (copy_process,
# scheduling, syscall entry and exit, page faults, wait ...).
_MAPLE = r"(mas|mt|mte|ma|mab|mast|mtree|mn|mat)_\w*|_+(mas|mt|mte|mtree|mab|mast)_\w*|maple_\w*"
FUNCTIONS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("user", r"\[user\]", ("forks",)),
    # copy_process: the patched 6.12 kernel's compiler inlines dup_mmap() into it
    ("dup_mmap", r"dup_mmap|dup_mm|copy_process", ("forks", "iter_vmas", "vmas_copied", "anon_vma_forks",
                               "file_vmas")),
    ("__mt_dup", r"__mt_dup|mt_dup_\w*|mas_dup_\w*|mtree_dup", ("forks", "dup_nodes",
                                                                 "dup_children")),
    # a store that changes a slot's NULL-ness re-scans its leaf for the largest gap and
    # writes the parents' gaps that change
    ("maple_gap", r"mas_leaf_max_gap|mas_update_gap|mas_parent_gap|mas_max_gap|ma_max_gap|"
                  r"mte_set_gap",
     ("leaf_gap_scans", "leaf_gap_slots", "gap_updates", "gap_scan_slots")),
    # a node store builds a new node from the old one's slots and the new range
    ("maple_node_store", r"mas_wr_node_store|mas_wr_slot_store",
     ("st_node_store", "st_slot_store", "build_slots")),
    # vma_iter_clear_gfp()'s entry: mas_store_gfp() per NULL store (patched dup_mmap)
    ("maple_store_gfp", r"mas_store_gfp", ("null_stores",)),
    ("maple_ascend", r"mas_ascend", ("ascents", "ascend_loops")),
    ("maple_rebalance", r"mas_spanning_rebalance|mas_topiary_replace|mab_\w*|mas_mab_cp|mast_\w*|"
                        r"mas_wr_bnode|mas_store_b_node|mas_rebalance|mas_split\w*|"
                        r"mas_push_data|mas_wr_spanning_store|mas_wr_walk_index|"
                        r"mas_bulk_rebalance|mas_destroy_rebalance|mas_new_ma_node",
     ("st_spanning+st_rebalance", "st_split", "bnode_slots")),
    ("maple_alloc", r"mas_alloc_nodes|mas_node_count\w*|mas_destroy|mas_alloc\w*|mas_free|"
                    r"mas_expected_entries|mas_set_alloc_req|mas_pop_node|mas_push_node|"
                    r"mas_preallocate|mt_free_\w*|ma_free_rcu|mte_destroy\w*|mt_destroy\w*|"
                    r"__mt_destroy",
     ("forks", "alloc_calls", "nodes_allocated", "nodes_freed", "exit_nodes",
      "st_spanning+st_rebalance", "st_split")),
    ("maple_store", r"mas_(wr|store|new|insert|spanning|replace|update_gap|parent_gap|"
                    r"extend|set_height|root_expand|store_root|reuse_node|leaf|ascend|"
                    r"state_\w*|max|find_child|wmb|prev_node|descend|put_in_tree)\w*|"
                    r"mtree_range_walk|mte_set_gap",
     ("forks", "vmas_copied", "null_stores", "st_append", "st_split", "walk_nodes",
      "slot_writes", "walk_pivots")),
    # mas_find() / mas_next_slot() cost the same per call, slot and leaf in every pass
    ("maple_iter", _MAPLE, ("forks", "find_calls", "iter_slots+exit_iter_slots",
                            "iter_leaves+exit_iter_leaves")),
    ("vm_area_dup", r"vm_area_(dup|free)\w*|__vm_area_free|vma_lock_(alloc|free)|"
                    r"vma_dup_policy|vm_area_init_from|vma_numab\w*|dup_userfaultfd\w*|"
                    r"vma_start_write|__vma_start_write|vma_mark_detached",
     ("vmas_copied", "exit_vmas")),
    ("anon_vma_fork", r"anon_vma_\w*|__anon_vma_\w*|unlink_anon_vmas|__put_anon_vma|"
                      r"put_anon_vma",
     ("anon_vma_forks", "anon_vma_allocs", "avc_allocs", "exit_avcs", "exit_vmas")),
    ("copy_page_range", r"copy_\w*_range|copy_present_\w*|copy_nonpresent_\w*|"
                        r"__pte_alloc\w*|pte_alloc\w*|__pmd_alloc|__pud_alloc|"
                        r"vma_needs_copy|pgd_alloc|folio_try_dup_anon_rmap\w*|"
                        r"page_dup_rmap|__folio_dup_\w*",
     # pte_slots / pmd_slots: the entries copy_pte_range() / copy_pmd_range() step through,
     # none ones included, over each copied VMA's range where the parent has the table
     ("vmas_copied", "anon_vma_forks", "ptes_copied", "pt_pages", "pte_slots", "pmd_slots")),
    ("exit_mmap", r"exit_mmap|unmap_\w*|zap_\w*|free_pgtables|free_pgd_range|free_p\w*_range|"
                  r"remove_vma|tlb_\w*|__tlb_\w*|free_pte_range|free_pages_and_swap_cache|"
                  r"folio_remove_rmap\w*|pte_free\w*|___pte_free_tlb|___pmd_free_tlb|"
                  r"mm_trace_rss_stat|lru_add_drain\w*|release_pages|free_unref\w*|"
                  r"mmu_notifier\w*|__mmu_notifier\w*|vm_normal_\w*",
     # exit_pte_slots / exit_pmd_slots: zap_pte_range() / zap_pmd_range() entries, as above,
     # over every VMA of the child where the child has the table
     # exit_pt_pages+slub_discards: pages given back to the page allocator (free_unref_page
     # ...), page tables and discarded slabs alike
     ("forks", "exit_vmas", "exit_ptes", "exit_pt_pages+slub_discards", "exit_vma_pud",
      "exit_vma_pmd",
      "exit_vma_pte", "anon_vma_forks", "exit_pte_slots", "exit_pmd_slots")),
    ("page_table_walk", r"__pte_offset_map\w*|pte_offset_map\w*|flush_tlb_batched_pending",
     ("forks", "pt_pages", "exit_pt_pages", "exit_vma_pmd", "exit_vma_pte", "ptes_copied",
      "anon_vma_forks")),
    ("vm_accounting", r"__vm_enough_memory|cap_vm_enough_memory|percpu_counter_add_batch|"
                      r"vm_unacct_memory|security_vm_enough_memory_mm",
     ("forks", "account_vmas", "exit_vma_pte", "anon_vma_forks")),
    ("file_vma", r"vma_interval_tree_\w*|fput|__fput\w*|get_file\w*|"
                 r"i_mmap_lock\w*|i_mmap_unlock\w*|__remove_shared_vm_struct|"
                 r"unlink_file_vma\w*|vma_link_file",
     ("file_vmas", "exit_vmas")),
    ("slab", r"kmem_cache_\w*|__kmem_cache_\w*|___slab_alloc|__slab_alloc\w*|__slab_free|"
             r"slab_\w*|kfree\w*|__kmalloc\w*|kmalloc\w*|get_partial\w*|put_cpu_partial|"
             r"__update_cpu_freelist_fast|allocate_slab|new_slab|discard_slab|"
             r"deactivate_slab|___cache_free|obj_cgroup\w*|memcg_slab\w*|"
             r"__memcg_slab\w*|kmem_cache_alloc\w*|__kmem_cache_alloc\w*|should_failslab|"
             r"rcu_free\w*|kvfree\w*|setup_object|shuffle_freelist|init_object|"
             r"build_detached_freelist",
     # slub_*: SLUB's fast and slow paths of the caches in SLUB_CACHES over the spawn loop
     # (simulator.slub, from the booted kernel's geometry: slub_work); maple nodes (bulk
     # allocations and frees) stay linear
     ("forks", *(f"slub_{k}" for k in SLUB_COUNTS), "alloc_calls", "nodes_allocated",
      "nodes_freed", "exit_nodes")),
    ("memcpy_memset", r"memcpy\w*|__memcpy\w*|memset\w*|__memset\w*|memmove\w*|"
                      r"clear_page\w*|copy_page\w*|rep_movs_alternative",
     ("forks", "vmas_copied", "nodes_allocated", "dup_nodes", "node_builds", "pt_pages")),
    # null_stores: vm_stat_account() per VM_DONTCOPY VMA (patched)
    # pt_pages+slub_new_slabs: the page allocator's (get_page_from_freelist ...) pages of
    # one fork, page tables and new slabs alike
    ("other", r".*", ("forks", "iter_vmas", "vmas_copied", "null_stores", "account_vmas",
                      "anon_vma_forks",
                      "avc_allocs", "file_vmas", "ptes_copied", "pt_pages+slub_new_slabs",
                      "exit_vma_pmd", "exit_vma_pte")),
)
_COMPILED = [(name, re.compile(f"(?:{pat})"), feats) for name, pat, feats in FUNCTIONS]
FUNCTION_NAMES = tuple(name for name, _, _ in FUNCTIONS)


def function_of(symbol: str) -> str:
    """The function group of a System.map symbol (a compiler clone's suffix, .constprop.0,
    .isra.0, .part.0 ..., is dropped)."""
    if not symbol.startswith("["):
        symbol = symbol.split(".", 1)[0]
    for name, rx, _ in _COMPILED:
        if rx.fullmatch(symbol):
            return name
    return "other"


def by_function(symbols: Mapping[str, float | Sequence[float]]) -> dict[str, float]:
    """Instructions per fork per function from a profile's {symbol: [insns, entries]}."""
    out = dict.fromkeys(FUNCTION_NAMES, 0.0)
    for sym, v in symbols.items():
        n = v[0] if isinstance(v, list | tuple) else v
        out[function_of(sym)] += float(n)
    return out


def features_of(function: str) -> tuple[str, ...]:
    for name, _, feats in FUNCTIONS:
        if name == function:
            return feats
    raise KeyError(function)


@dataclass
class InsnPoint:
    """One profiled layout: its measured instructions per fork per function, and the
    simulator's work counts for it."""

    layout: str  # family: calibration layout name, or "spawn" (the seed's layout, every count)
    vmas: int
    forks_per_s: float
    measured: Mapping[str, float]  # function -> instructions per fork
    work: Mapping[str, float]

    @property
    def total(self) -> float:
        return float(sum(self.measured.values()))


def count(work: Mapping[str, float], feature: str) -> float:
    """A work count, or the sum of several ("st_spanning+st_rebalance")."""
    return float(sum(float(work.get(f, 0)) for f in feature.split("+")))


def _x(work: Mapping[str, float], feats: Sequence[str]) -> np.ndarray:
    return np.array([count(work, f) for f in feats])


def _fit(X: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Non-negative c minimising sum(((X c - y) * w)^2), columns scaled to unit norm."""
    W = X * w[:, None]
    scale = np.linalg.norm(W, axis=0)
    scale[scale == 0] = 1.0
    from scipy.optimize import nnls  # here, not at import: 0.5 s of every CLI start

    c, _ = nnls(W / scale, y * w)
    return c / scale


@dataclass
class InsnModel:
    costs: dict[str, dict[str, float]]  # function -> work count -> instructions per unit
    fitted_on: dict = field(default_factory=dict)
    ns_per_insn: float = 1.0
    points: list[dict] = field(default_factory=list)
    lolo: dict[str, float] = field(default_factory=dict)  # layout -> max |LOLO error| %
    slab_geometry: dict = field(default_factory=dict)  # cache -> /sys/kernel/slab attributes

    def function_insns(self, work: Mapping[str, float]) -> dict[str, float]:
        work = {**work, **slub_work(work, self.slab_geometry)}
        return {g: sum(c * count(work, f) for f, c in cs.items())
                for g, cs in self.costs.items()}

    def insns_per_fork(self, work: Mapping[str, float]) -> float:
        return float(sum(self.function_insns(work).values()))

    def forks_per_s(self, work: Mapping[str, float]) -> float:
        return 1e9 / (self.insns_per_fork(work) * self.ns_per_insn)

    @property
    def band_pct(self) -> float:
        return max(self.lolo.values()) if self.lolo else float("nan")

    def to_dict(self) -> dict:
        return {"kind": "insn", "costs": self.costs, "fitted_on": self.fitted_on,
                "ns_per_insn": self.ns_per_insn, "points": self.points,
                "slab_geometry": self.slab_geometry,
                "lolo_max_error_pct": self.lolo, "lolo_band_pct": self.band_pct}


def _fit_all(points: Sequence[InsnPoint]) -> dict[str, dict[str, float]]:
    w = np.array([1.0 / p.total for p in points])
    costs = {}
    for g in FUNCTION_NAMES:
        y = np.array([p.measured.get(g, 0.0) for p in points])
        if not y.any():
            continue
        feats = features_of(g)
        X = np.array([_x(p.work, feats) for p in points])
        used = [i for i in range(len(feats)) if X[:, i].any()]
        c = _fit(X[:, used], y, w)
        costs[g] = {feats[i]: float(v) for i, v in zip(used, c, strict=True)}
    return costs


def fit(points: Sequence[InsnPoint], fitted_on: dict | None = None,
        slab_geometry: Mapping[str, Mapping] | None = None) -> InsnModel:
    """Fit every function's sub-model on all points, then the LOLO refits. slab_geometry:
    the kernel's SLUB geometry (slub_work), {} or None for the fast-path-only fallback."""
    if len(points) < 2:
        raise ValueError("the instruction model needs at least two profiled layouts")
    geo = dict(slab_geometry or {})
    points = [InsnPoint(p.layout, p.vmas, p.forks_per_s, p.measured,
                        {**p.work, **slub_work(p.work, geo)}) for p in points]
    ns = [1e9 / p.forks_per_s / p.total for p in points if p.forks_per_s > 0]
    model = InsnModel(_fit_all(points), dict(fitted_on or {}),
                      float(np.median(ns)) if ns else 1.0, slab_geometry=geo)
    lolo: dict[int, tuple[float, dict[str, float]]] = {}
    for lay in sorted({p.layout for p in points}):
        rest = [p for p in points if p.layout != lay]
        if len({p.layout for p in rest}) < 1 or len(rest) < 2:
            continue
        held = InsnModel(_fit_all(rest), slab_geometry=geo)
        for i, p in enumerate(points):
            if p.layout == lay:
                fn = held.function_insns(p.work)
                err = {g: (fn.get(g, 0.0) - p.measured.get(g, 0.0)) / p.total * 100.0
                       for g in FUNCTION_NAMES}
                lolo[i] = (sum(fn.values()) / p.total * 100.0 - 100.0, err)
    for i, p in enumerate(points):
        fn = model.function_insns(p.work)
        pred = sum(fn.values())
        e = lolo.get(i)
        model.points.append({
            "layout": p.layout, "vmas": p.vmas, "observed_forks_per_s": p.forks_per_s,
            "measured_insns": p.total, "fitted_insns": pred,
            "error_pct": (pred / p.total - 1.0) * 100.0,
            # + = the model predicts more instructions than measured (a slower fork)
            "lolo_error_pct": None if e is None else e[0],
            "lolo_by_function_pct": None if e is None else {g: v for g, v in e[1].items() if v},
            "measured_by_function": dict(p.measured), "fitted_by_function": fn})
    for lay in {p["layout"] for p in model.points}:
        errs = [abs(p["lolo_error_pct"]) for p in model.points
                if p["layout"] == lay and p["lolo_error_pct"] is not None]
        if errs:
            model.lolo[lay] = max(errs)
    return model
