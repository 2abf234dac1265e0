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
maple tree        from the write path's counters (simulator.maple.core.OPS): walk_nodes,
                  slot_writes, node_builds, build_slots, bnode_slots, gap_updates, the store
                  types st_*; __mt_dup's dup_nodes and dup_children; allocations from the
                  dup_mmap trace: alloc_calls, nodes_allocated, nodes_freed.
page tables       account_vmas: copied VMAs with VM_ACCOUNT (__vm_enough_memory per VMA);
                  exit_vma_pud / exit_vma_pmd / exit_vma_pte: the child's VMAs whose range
                  meets a 512 GiB / 1 GiB / 2 MiB region where the child has a PUD / PMD /
                  PTE table (from the parent's page-table presence over the copied VMAs that
                  copy_page_range() copies): how deep exit's unmap_page_range() and
                  free_pgtables() walk for each VMA. pte_slots / pmd_slots: the PTE
                  slots and PMD entries copy_page_range() steps through (none ones
                  included) over the copied VMAs where the parent has the table;
                  exit_pte_slots / exit_pmd_slots: the same for unmap_page_range() over
                  every VMA of the child where the child has it (walk_entries).
exit_mmap         exit_vmas (unmap_vmas + remove_vma per VMA), exit_iter_slots and
                  exit_iter_leaves (its three iterator passes over the child's tree:
                  unmap_vmas, free_pgtables, the remove_vma loop), exit_nodes (the
                  child tree's nodes freed by __mt_destroy), exit_ptes (ptes zapped),
                  exit_avcs (unlink_anon_vmas), exit_pt_pages (free_pgtables).
"""

from __future__ import annotations

import bisect
from typing import Any

from .fork import ForkResult
from .maple import core as C
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


def walk_entries(v: Any, tables: set[int], region_shift: int, entry_shift: int) -> int:
    """Entries (each 1 << entry_shift of address space) that a page-table walk over VMA v
    steps through at one level: the walk descends only where the level above has a table
    (the regions addr >> region_shift in `tables`), and there it visits every entry of v's
    range, present or none (mm/memory.c: copy_pmd_range() / copy_pte_range() and
    zap_pmd_range() / zap_pte_range() loop `addr != end` over the VMA's range, skipping a
    none entry only after reading it)."""
    n = 0
    for r in _regions(v, region_shift):
        if r in tables:
            lo = max(v.start, r << region_shift)
            hi = min(v.end, (r + 1) << region_shift)
            n += ((hi - 1) >> entry_shift) - (lo >> entry_shift) + 1
    return n


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


def tree_ascents(tree: Any) -> dict[str, int]:
    """mas_ascend() calls of one full in-order pass over a maple tree, and the iterations of
    their ancestor loop (lib/maple_tree.c, 6.12).

    mas_next_node() ascends from a node when the walk moves past its last slot, one level per
    call, so a pass over the whole tree ascends once from every non-root node except those
    ending at ULONG_MAX (the right spine: at its leaf `mas->max >= max` ends the walk);
    mas_dup_build() ascends from the same nodes (its walk ends at the leaf whose max is
    ULONG_MAX). When the parent is not the root, mas_ascend() knows the node's min if it is
    its parent's first child (its max is never ULONG_MAX here), and loops up the ancestors,
    one iteration each, until it has a min (the path's slot is not the first) and a max (the
    slot is not the node type's last pivot), or has reached the root."""
    calls = loops = 0
    root = getattr(tree, "root", None)
    if not isinstance(root, C.Node):
        return {"calls": 0, "loops": 0}
    # (node, max, path): path[d] = the slot of the path's node at depth d + 1 in its parent
    stack: list[tuple[Any, int, list[int]]] = [(root, C.M, [])]
    while stack:
        node, mx, path = stack.pop()
        if path and mx != C.M:
            calls += 1
            set_min, set_max = path[-1] == 0, False
            for depth in range(len(path) - 2, -1, -1):  # the grandparent up to the root
                loops += 1
                a_slot = path[depth]
                set_min = set_min or a_slot > 0
                set_max = set_max or a_slot < C.AR_PIVOTS
                if depth == 0 or (set_min and set_max):
                    break
        if node.leaf:
            continue
        end = C.ma_data_end(node, mx)
        for i in range(end + 1):
            child = node.slot[i]
            if isinstance(child, C.Node):
                cmax = node.piv[i] if i < end and i < C.AR_PIVOTS else mx
                stack.append((child, cmax, [*path, i]))
    return {"calls": calls, "loops": loops}


def fork_work(parent: Mm, res: ForkResult) -> dict[str, int]:
    """The shared-unit work counts of one fork + the child's exit (see the module doc)."""
    ops = res.ops
    vmas = list(parent.vmas())
    pages = sorted(parent.pages)
    ptes = pte_slots = pmd_slots = 0
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
        pte_slots += walk_entries(v, parent.pte_tables, PMD_SHIFT, PAGE_SHIFT)
        pmd_slots += walk_entries(v, parent.pmd_tables, PUD_SHIFT, PMD_SHIFT)
        for shift, have in tables.items():
            have.update(r for r in _regions(v, shift) if r in parent_tables[shift])
    walks = dict.fromkeys((PGDIR_SHIFT, PUD_SHIFT, PMD_SHIFT), 0)
    exit_pte_slots = exit_pmd_slots = 0
    for i in res.copied:
        for shift, have in tables.items():
            if any(r in have for r in _regions(vmas[i], shift)):
                walks[shift] += 1
        # unmap_page_range() over every VMA of the child, file VMAs included: the PMD
        # entries under its PMD tables, the PTE slots under its PTE tables
        exit_pmd_slots += walk_entries(vmas[i], tables[PUD_SHIFT], PUD_SHIFT, PMD_SHIFT)
        exit_pte_slots += walk_entries(vmas[i], tables[PMD_SHIFT], PMD_SHIFT, PAGE_SHIFT)
    it = tree_shape(parent.tree)
    child = tree_shape(res.child_tree)
    up, child_up = tree_ascents(parent.tree), tree_ascents(res.child_tree)
    # dup_mmap's loop walks the parent's tree (baseline) or its __mt_dup copy (patched: the
    # parent's shape, which mas_dup_build() walks too, ascending in both trees at once);
    # exit_mmap walks the child's EXIT_PASSES times
    parent_walks = 3 if res.variant == "patched" else 1
    w = {
        "forks": 1,
        "iter_vmas": len(vmas), "iter_slots": it["slots"], "iter_leaves": it["leaves"],
        "vmas_copied": ops["vmas_copied"], "anon_vma_forks": ops["anon_vma_forks"],
        "avc_allocs": ops["avc_allocs"], "anon_vma_allocs": ops["anon_vma_allocs"],
        "file_vmas": ops["file_vmas"], "ptes_copied": ptes, "pt_pages": ops["pt_pages"],
        "pte_slots": pte_slots, "pmd_slots": pmd_slots,
        "exit_pte_slots": exit_pte_slots, "exit_pmd_slots": exit_pmd_slots,
        "account_vmas": sum(1 for i in res.copied if vmas[i].flags & VM_ACCOUNT),
        "exit_vma_pud": walks[PGDIR_SHIFT], "exit_vma_pmd": walks[PUD_SHIFT],
        "exit_vma_pte": walks[PMD_SHIFT],
        "alloc_calls": ops["alloc_calls"], "nodes_allocated": ops["nodes_allocated"],
        "nodes_freed": ops["nodes_freed"],
        "exit_vmas": res.child_map_count, "exit_iter_slots": EXIT_PASSES * child["slots"],
        "exit_iter_leaves": EXIT_PASSES * child["leaves"], "exit_nodes": child["nodes"],
        # + the write path's own (splits, rebalances: counted by simulator.maple.core)
        "ascents": parent_walks * up["calls"] + EXIT_PASSES * child_up["calls"]
        + ops.get("write_ascents", 0),
        "ascend_loops": parent_walks * up["loops"] + EXIT_PASSES * child_up["loops"]
        + ops.get("write_ascend_loops", 0),
        # mas_find() calls of the four passes (dup_mmap's, exit_mmap's EXIT_PASSES): one per
        # VMA each pass visits
        "find_calls": len(vmas) + EXIT_PASSES * res.child_map_count,
        "exit_ptes": ptes, "exit_avcs": ops["avc_allocs"], "exit_pt_pages": ops["pt_pages"],
    }
    for name in C.OP_NAMES.values():
        w[name] = ops.get(name, 0)
    # the patched dup_mmap() clears each VM_DONTCOPY VMA from the __mt_dup copy with
    # vma_iter_clear_gfp() (mas_store_gfp(NULL): its own preallocation and walk from the root);
    # the baseline skips them
    w["null_stores"] = ops.get("null_stores", 0)
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
        w["walk_pivots"] -= ops.get("replay_walk_pivots", 0)
        missing = ops["vmas_copied"] - replayed
        w["st_exact_fit"] += missing
        w["walk_nodes"] += missing
        w["slot_writes"] += missing
    return w
