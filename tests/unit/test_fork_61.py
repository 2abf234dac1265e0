"""dup_mmap() of 6.1 (kernel/fork.c of 6.1.192, which is the `baseline` model) with 6.1's
kernel facts (no per-VMA lock, on-demand maple node allocation), on the real simulator maple
tree. Expected values are derived from reading the 6.1 source; none is copied from the
model's output."""

from __future__ import annotations

import math

from simulator.fork import FaultSettings, KernelConfig, dup_mmap, outcome
from simulator.maple import MapleTree
from simulator.predict import build_parent, records
from simulator.scenario import from_dict

SUITE = FaultSettings(failslab_ignore_gfp_wait=False)
CONFIG_61 = KernelConfig(per_vma_lock=False, maple_alloc="ondemand")


def _fork(groups, config=CONFIG_61):
    sc = from_dict({"name": "t", "groups": groups})
    parent = build_parent(sc, tree_factory=lambda: MapleTree(alloc=config.maple_alloc))
    return parent, dup_mmap(parent, "baseline", SUITE, config)


def test_trace_starts_with_the_preallocation_and_has_no_vma_lock():
    """6.1 dup_mmap(): mas_expected_entries(&mas, oldmm->map_count) first (GFP_KERNEL: one
    mt_alloc_one() and mt_alloc_bulk() chunks of at most 30), then per copied VMA
    vm_area_dup() -> kmem_cache_alloc(vm_area_cachep) only: 6.1 has no vma_lock cache."""
    parent, res = _fork([{"count": 5, "touch": "first"}, {"count": 3, "kind": "file", "prot": "r"}])
    leaves = math.ceil((2 * parent.map_count + 1) / 14)
    nodes = leaves + math.ceil(leaves / 8) + 3
    want = [("single", 1)] + [("bulk", min(30, nodes - 1 - 30 * i))
                              for i in range(math.ceil((nodes - 1) / 30))]
    pre = [(e.kind, e.objects) for e in res.trace if e.site == "mas_expected_entries"]
    assert pre == want
    assert res.trace[0].site == "mas_expected_entries"
    assert not [e for e in res.trace if e.cache == "vma_lock" or e.site == "vma_lock_alloc"]
    vmas = [e for e in res.trace if e.site == "vm_area_dup"]
    assert len(vmas) == parent.map_count == res.child_map_count
    # the bulk stores take nodes from the preallocation: no store allocates
    assert not [e for e in res.trace if e.site == "vma_iter_bulk_store"]


def test_anon_vma_fork_failures_free_what_6_1_frees():
    """6.1 anon_vma_fork(): anon_vma_clone() (one anon_vma_chain per parent chain entry,
    GFP_NOWAIT then GFP_KERNEL), then anon_vma_alloc() and anon_vma_chain_alloc(GFP_KERNEL).
    Failing anon_vma_alloc(): out_error -> unlink_anon_vmas() frees the cloned chain, and
    dup_mmap()'s fail_nomem_anon_vma_fork -> vm_area_free() the VMA (no vma_lock to free).
    Failing the chain: out_error_free_anon_vma -> put_anon_vma() frees the anon_vma too."""
    parent, res = _fork([{"count": 3, "touch": "first"}])
    first_anon = next(e for e in res.counted if e.cache == "anon_vma")
    o = outcome(res, first_anon.check)
    assert o["fork"] == "ENOMEM"
    assert o["freed_by_error_path"] == {"vm_area_struct": 1, "anon_vma_chain": 1}
    chain = next(e for e in res.counted if e.site == "anon_vma_fork" and e.cache == "anon_vma_chain")
    o = outcome(res, chain.check)
    assert o["freed_by_error_path"] == {"vm_area_struct": 1, "anon_vma_chain": 1, "anon_vma": 1}


def test_a_failed_6_1_fork_leaves_a_child_tree_of_copies_only():
    """6.1 dup_mmap() stores each copy after anon_vma_fork(); on failure (goto fail_nomem /
    loop_out) mas_destroy() frees the unused preallocated nodes and there is no XA_ZERO_ENTRY:
    exit_mmap() releases exactly the copies made so far, and __mt_destroy() the tree, so every
    node allocated is freed. Failing the 3rd VMA's vm_area_dup() (fail_nomem: nothing of it
    to free) leaves 2 copies, each with its vm_area_struct, its anon_vma and 2 chains (the
    cloned one and its own)."""
    parent, res = _fork([{"count": 4, "touch": "first"}])
    layout_start = min(e.vma_index for e in res.trace if e.cache == "anon_vma")
    third = [e for e in res.counted if e.site == "vm_area_dup" and e.vma_index >= layout_start][2]
    o = outcome(res, third.check)
    assert o["fork"] == "ENOMEM" and o["marker"] is None
    assert o["freed_by_error_path"] == {}
    copies = [i for i in res.copied if i < third.vma_index]
    assert o["child_vmas_released"] == len(copies)
    nodes = sum(e.objects for e in res.trace if e.site == "mas_expected_entries")
    teardown = o["freed_by_teardown"]
    assert teardown["maple_node"] == nodes
    assert teardown["vm_area_struct"] == len(copies)
    assert teardown["anon_vma"] == 2 and teardown["anon_vma_chain"] == 4
    assert "vma_lock" not in teardown and o["net"] == dict.fromkeys(o["allocated"], 0)


def test_predictions_record_the_6_1_config():
    """The records say which kernel they were predicted for."""
    sc = from_dict({"name": "t", "groups": [{"count": 2, "touch": "first"}]})
    recs = records(sc, "baseline", config=CONFIG_61, measurements=("counts",))
    assert recs[0]["kernel_config"] == {"per_vma_lock": False, "maple_alloc": "ondemand"}
    assert "vma_lock" not in recs[0]["objects"]
