"""The work one fork of the spawn loop makes the kernel do, in units both dup_mmap variants
share: what the timing cost model (simulator.cost) multiplies by fitted per-unit costs.

The spawn loop forks, and the child _exits at once, so each fork pays for dup_mmap() and for
the child's exit_mmap(). Counted here, from the simulated trees and mm (never from a
measurement):

dup_mmap's loop   iter_vmas, iter_slots, iter_leaves: the VMAs, slots and leaves its VMA
                  iterator steps through (baseline: the parent's tree; patched: its __mt_dup
                  copy, which has the parent's shape). vmas_copied (vm_area_dup + vma lock),
                  anon_vma_forks / avc_allocs / anon_vma_allocs, file_vmas (get_file,
                  i_mmap insert), ptes_copied and pt_pages (copy_page_range).
maple tree        from the write path's counters (simulator.maple_core.OPS): walk_nodes,
                  slot_writes, node_builds, build_slots, bnode_slots, gap_updates, the store
                  types st_*; __mt_dup's dup_nodes and dup_children; allocations from the
                  dup_mmap trace: alloc_calls, nodes_allocated, nodes_freed.
page tables       account_vmas: copied VMAs with VM_ACCOUNT (__vm_enough_memory per VMA);
                  exit_vma_pud / exit_vma_pmd / exit_vma_pte: the child's VMAs whose range
                  meets a 512 GiB / 1 GiB / 2 MiB region where the child has a PUD / PMD /
                  PTE table (from the parent's page-table presence over the copied VMAs that
                  copy_page_range() copies): how deep exit's unmap_page_range() and
                  free_pgtables() walk for each VMA.
exit_mmap         exit_vmas (unmap_vmas + remove_vma per VMA), exit_iter_slots and
                  exit_iter_leaves (its three iterator passes over the child's tree:
                  unmap_vmas, free_pgtables, the remove_vma loop), exit_nodes (the
                  child tree's nodes freed by __mt_destroy), exit_ptes (ptes zapped),
                  exit_avcs (unlink_anon_vmas), exit_pt_pages (free_pgtables).
"""

from __future__ import annotations

import bisect
from typing import Any

from . import maple_core as C
from .fork import ForkResult
from .mm import (
    PAGE_SHIFT,
    PGDIR_SHIFT,
    PMD_SHIFT,
    PUD_SHIFT,
    VM_ACCOUNT,
    VM_MIXEDMAP,
    VM_PFNMAP,
    VM_WIPEONFORK,
    Mm,
)

# exit_mmap() walks the child's tree three times: unmap_vmas(), free_pgtables() (mas_find
# loops) and the remove_vma() loop (vma_next), each stepping over every slot.
EXIT_PASSES = 3


def _regions(v: Any, shift: int) -> range:
    return range(v.start >> shift, ((v.end - 1) >> shift) + 1)


def tree_shape(tree: Any) -> dict[str, int]:
    """Nodes, leaves and leaf slots (NULL ranges included: iterators step over them) of a
    maple tree."""
    nodes = leaves = slots = 0
    walk = getattr(tree, "_walk", None)
    if walk is None:
        return {"nodes": 0, "leaves": 0, "slots": 0}
    for node, _mn, mx in walk():
        nodes += 1
        if node.leaf:
            leaves += 1
            slots += C.ma_data_end(node, mx) + 1
    return {"nodes": nodes, "leaves": leaves, "slots": slots}


def fork_work(parent: Mm, res: ForkResult) -> dict[str, int]:
    """The shared-unit work counts of one fork + the child's exit (see the module doc)."""
    ops = res.ops
    vmas = list(parent.vmas())
    pages = sorted(parent.pages)
    ptes = 0
    tables: dict[int, set[int]] = {PGDIR_SHIFT: set(), PUD_SHIFT: set(), PMD_SHIFT: set()}
    parent_tables = {PGDIR_SHIFT: parent.pud_tables, PUD_SHIFT: parent.pmd_tables,
                     PMD_SHIFT: parent.pte_tables}
    for i in res.copied:
        v = vmas[i]
        if v.flags & VM_WIPEONFORK:
            continue
        if v.anon_vma is None and not v.flags & (VM_PFNMAP | VM_MIXEDMAP):
            continue
        lo, hi = v.start >> PAGE_SHIFT, v.end >> PAGE_SHIFT
        ptes += bisect.bisect_left(pages, hi) - bisect.bisect_left(pages, lo)
        for shift, have in tables.items():
            have.update(r for r in _regions(v, shift) if r in parent_tables[shift])
    walks = dict.fromkeys((PGDIR_SHIFT, PUD_SHIFT, PMD_SHIFT), 0)
    for i in res.copied:
        for shift, have in tables.items():
            if any(r in have for r in _regions(vmas[i], shift)):
                walks[shift] += 1
    it = tree_shape(parent.tree)
    child = tree_shape(res.child_tree)
    w = {
        "forks": 1,
        "iter_vmas": len(vmas), "iter_slots": it["slots"], "iter_leaves": it["leaves"],
        "vmas_copied": ops["vmas_copied"], "anon_vma_forks": ops["anon_vma_forks"],
        "avc_allocs": ops["avc_allocs"], "anon_vma_allocs": ops["anon_vma_allocs"],
        "file_vmas": ops["file_vmas"], "ptes_copied": ptes, "pt_pages": ops["pt_pages"],
        "account_vmas": sum(1 for i in res.copied if vmas[i].flags & VM_ACCOUNT),
        "exit_vma_pud": walks[PGDIR_SHIFT], "exit_vma_pmd": walks[PUD_SHIFT],
        "exit_vma_pte": walks[PMD_SHIFT],
        "alloc_calls": ops["alloc_calls"], "nodes_allocated": ops["nodes_allocated"],
        "nodes_freed": ops["nodes_freed"],
        "exit_vmas": res.child_map_count, "exit_iter_slots": EXIT_PASSES * child["slots"],
        "exit_iter_leaves": EXIT_PASSES * child["leaves"], "exit_nodes": child["nodes"],
        "exit_ptes": ptes, "exit_avcs": ops["avc_allocs"], "exit_pt_pages": ops["pt_pages"],
    }
    for name in C.OP_NAMES.values():
        w[name] = ops.get(name, 0)
    if res.variant == "patched":
        # vma_iter_bulk_store() over each copied VMA: an exact-fit store on the leaf the
        # iterator stands on (one node walked, one slot written, never an allocation).
        # dup_mmap(replace_entries=False) skips running them on the tree; count them here.
        # MapleTree.replace_exact() walks from the root; the kernel's iterator is already on
        # the leaf: count one node per store either way. The tree's own st_exact_fit also
        # counts the NULL stores over DONTCOPY VMAs that replace exactly one entry: those
        # stay as the tree counted them.
        replayed = ops.get("copy_stores_replayed", 0)
        w["walk_nodes"] -= replayed * max(ops.get("child_height", 1) - 1, 0)
        missing = ops["vmas_copied"] - replayed
        w["st_exact_fit"] += missing
        w["walk_nodes"] += missing
        w["slot_writes"] += missing
    return w
