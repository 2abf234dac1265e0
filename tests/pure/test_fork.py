"""dup_mmap() model (simulator/fork.py) on the real simulator maple tree. Each test names the
kernel function (6.12) whose behaviour it checks; expected values come from the source's
rules, not from the model's output."""

from __future__ import annotations

import math

import pytest

from simulator.fork import FaultSettings, dup_mmap, outcome, outcomes
from simulator.mm import VM_DONTCOPY, VM_WIPEONFORK
from simulator.predict import build_parent
from simulator.scenario import from_dict

SUITE = FaultSettings(failslab_ignore_gfp_wait=False)


def _sc(*groups):
    return from_dict({"name": "t", "groups": list(groups)})


MIXED = _sc({"count": 3, "touch": "all"},
            {"count": 2, "advice": "dontfork", "touch": "all"},
            {"count": 2, "advice": "wipeonfork", "touch": "all"},
            {"count": 1, "kind": "file", "prot": "r"})


@pytest.mark.parametrize("variant", ["patched", "baseline"])
def test_dontcopy_vmas_vanish_and_map_count(variant):
    """kernel/fork.c dup_mmap(): VM_DONTCOPY VMAs are not copied (patched: NULL stored over
    them; baseline: not stored); mm->map_count counts the copies only; the parent is unchanged."""
    parent = build_parent(MIXED)
    dontcopy = [(v.start, v.end) for v in parent.vmas() if v.flags & VM_DONTCOPY]
    assert len(dontcopy) == 2
    n_parent = parent.map_count
    res = dup_mmap(parent, variant, SUITE)
    child = {(c.start, c.end) for c in res.child}
    assert not child & set(dontcopy)
    assert res.child_map_count == n_parent - 2 == len(res.child)
    assert parent.map_count == n_parent
    for s, _e in dontcopy:
        assert res.child_tree.load(s) is None
    for c in res.child:
        assert res.child_tree.load(c.start) is not None


@pytest.mark.parametrize("variant", ["patched", "baseline"])
def test_wipeonfork_stays_without_anon_vma(variant):
    """kernel/fork.c dup_mmap(): VM_WIPEONFORK copies keep the VMA but get tmp->anon_vma = NULL,
    skip anon_vma_fork() and copy_page_range()."""
    parent = build_parent(MIXED)
    wipe = [v for v in parent.vmas() if v.flags & VM_WIPEONFORK]
    assert len(wipe) == 2 and all(v.anon_vma is not None for v in wipe)
    res = dup_mmap(parent, variant, SUITE)
    kids = {c.start: c for c in res.child}
    idx = {v.start: i for i, v in enumerate(parent.vmas())}
    for v in wipe:
        assert kids[v.start].wipeonfork and not kids[v.start].anon_vma
        sites = {e.site for e in res.trace if e.vma_index == idx[v.start]}
        assert sites == {"vm_area_dup", "vma_lock_alloc"}


@pytest.mark.parametrize("n", [1, 6, 7, 21, 121, 821, 3221, 51221])
def test_mas_expected_entries_formula(n):
    """lib/maple_tree.c mas_expected_entries(): nodes = L + ceil(L/8) + 3 with
    L = ceil(max(n, 2n+1) / 14), allocated by mas_alloc_nodes() as one single allocation and
    bulk chunks of at most MAPLE_ALLOC_SLOTS (30) per maple_alloc node."""
    from simulator.maple import MapleTree

    t = MapleTree(rcu=False)
    t.expected_entries(n)
    leaves = math.ceil((2 * n + 1) / 14)
    want = leaves + math.ceil(leaves / 8) + 3
    recs = [r for r in t.alloc_log if r.kind != "free"]
    assert sum(r.count for r in recs) == want
    assert recs[0].kind == "single" and recs[0].count == 1
    assert all(r.count <= 30 for r in recs if r.kind == "bulk")


def test_mt_dup_allocation_pattern():
    """lib/maple_tree.c mas_dup_build(): one mt_alloc_one() for the root, then one
    mt_alloc_bulk() per internal node for all its children: checks = 1 + internal nodes,
    objects = nodes of the parent's tree."""
    parent = build_parent(_sc({"count": 300, "touch": "first"}))
    res = dup_mmap(parent, "patched", SUITE)
    dup = [e for e in res.trace if e.site == "__mt_dup"]
    assert dup[0].kind == "single" and dup[0].objects == 1
    assert all(e.kind == "bulk" for e in dup[1:])
    assert len(dup) == 1 + parent.tree.internal_count
    assert sum(e.objects for e in dup) == parent.tree.node_count
    assert parent.tree.internal_count > 1  # a tree of height >= 3 here


def test_absorbed_and_fatal_failures():
    """mm/rmap.c anon_vma_clone(): a failed GFP_NOWAIT anon_vma_chain allocation is retried
    with GFP_KERNEL (absorbed); vm_area_dup()/anon_vma_alloc() failures make dup_mmap()
    return -ENOMEM (kernel/fork.c fail_nomem)."""
    parent = build_parent(_sc({"count": 2, "touch": "all"}))
    res = dup_mmap(parent, "patched", SUITE)
    by_site = {}
    for e in res.counted:
        by_site.setdefault(e.site, e)
    clone = outcome(res, by_site["anon_vma_clone"].check)
    assert clone["fork"] == "success" and clone["absorbed"]
    for site in ("vm_area_dup", "vma_lock_alloc", "anon_vma_fork", "__mt_dup"):
        o = outcome(res, by_site[site].check)
        assert o["fork"] == "ENOMEM" and o["errno"] == "ENOMEM", site


@pytest.mark.parametrize("variant", ["patched", "baseline"])
def test_every_fatal_failure_is_enomem_and_sweep_ends(variant):
    """kernel/fork.c dup_mmap(): every failure path sets retval = -ENOMEM; fail-nth beyond the
    last counted check is not reached (lib/fault-inject.c should_fail_ex() counts down)."""
    parent = build_parent(MIXED)
    res = dup_mmap(parent, variant, SUITE)
    outs = outcomes(res)
    assert len(outs) == len(res.counted) + 1
    assert outs[-1]["injected"] is False and outs[-1]["fork"] == "success"
    for o, e in zip(outs, res.counted, strict=False):
        assert o["fork"] == ("success" if e.on_fail == "absorbed" else "ENOMEM")


def test_marker_placement_patched_vs_baseline():
    """kernel/fork.c dup_mmap() (patched): on failure XA_ZERO_ENTRY is stored over mpnt, the
    VMA being copied, or the next one after a failed copy_page_range(); the baseline stores
    no marker (patches/baseline)."""
    parent = build_parent(_sc({"count": 3, "touch": "all"}))
    settings = FaultSettings(False, False, 0)  # page-table pages counted too
    res = dup_mmap(parent, "patched", settings)
    vmas = res.parent_vmas
    e = next(e for e in res.counted if e.site == "vm_area_dup" and e.vma_index == 5)
    o = outcome(res, e.check)
    assert o["marker"]["start"] == hex(vmas[5][0])
    assert o["child_vmas_released"] == 5
    pt = next(e for e in res.counted if e.site == "copy_page_range" and e.vma_index < 9)
    o = outcome(res, pt.check)
    assert o["marker"]["start"] == hex(vmas[pt.vma_index + 1][0])
    base = dup_mmap(parent, "baseline", settings)
    e = next(e for e in base.counted if e.site == "vm_area_dup" and e.vma_index == 5)
    assert outcome(base, e.check)["marker"] is None


def test_default_ignore_gfp_wait_counts_only_nowait():
    """mm/failslab.c should_failslab(): with ignore-gfp-wait (default Y) allocations that may
    reclaim (__GFP_DIRECT_RECLAIM, GFP_KERNEL) are skipped, so only GFP_NOWAIT checks count
    and every injected failure is absorbed."""
    parent = build_parent(MIXED)
    res = dup_mmap(parent, "patched", FaultSettings())
    assert res.counted and all(e.gfp.startswith("GFP_NOWAIT") for e in res.counted)
    assert all(o["fork"] == "success" for o in outcomes(res))
