"""dup_mmap() of 7.2 (mm/mmap.c of linux-source-7.2 7.2.13, the tree's own __mt_dup dup_mmap,
the `patched` model) with 7.2's kernel facts, on the real simulator maple tree. Expected
values are derived from reading the 7.2 source (mm/mmap.c dup_mmap(), mm/vma_init.c
vm_area_dup(), mm/rmap.c anon_vma_fork(), lib/maple_tree.c mas_alloc_nodes()/
mas_prealloc_calc()/mas_dup_alloc(), mm/slub.c slab_alloc_node()/__pcs_replace_empty_main(),
arch/x86/entry/vdso/vma.c map_vdso()); none is copied from the model's output."""

from __future__ import annotations

import pytest

from simulator import runconfig
from simulator.exec_image import ExecParams, build_exec_image
from simulator.fork import GFP_KERNEL, GFP_NOWAIT, FaultSettings, KernelConfig, dup_mmap, outcome
from simulator.maple import MapleTree
from simulator.maple import core as C
from simulator.mm import PAGE_SIZE, VM_MIXEDMAP, VM_PFNMAP
from simulator.predict import build_parent, records
from simulator.scenario import from_dict

SUITE = FaultSettings(failslab_ignore_gfp_wait=False)
FACTS_72 = {"version": "7.2.13", "version_tuple": [7, 2, 13], "dup_mmap_file": "mm/mmap.c",
            "dup_mmap_model": "patched", "fork_failure": "teardown", "vma_lock": "embedded",
            "maple_alloc": "sheaves", "vdso_vclock": True}
CONFIG_72 = runconfig.resolve("faults", None, None, FACTS_72).config


def _fork(groups, config=CONFIG_72, settings=SUITE):
    sc = from_dict({"name": "t", "groups": groups})
    parent = build_parent(sc, params=ExecParams(vclock=config.vdso_vclock),
                          tree_factory=lambda: MapleTree(alloc=config.maple_alloc,
                                                         write=config.maple_write))
    return parent, dup_mmap(parent, "patched", settings, config)


def test_the_7_2_facts_select_the_7_2_behaviours_in_runconfig():
    c = CONFIG_72
    assert (c.fork_failure, c.vma_lock, c.maple_alloc, c.vdso_vclock) == \
        ("teardown", "embedded", "sheaves", True)
    assert c.anon_vma_fork == "alloc_first" and c.slab_sheaves and not c.vma_lock_alloc
    # FACTS_72 is a record made before maple_write was read: 7.2's lib/maple_tree.c writes
    # through struct maple_copy, so its version gives maple_copy
    assert c.maple_write == "maple_copy"
    rm = runconfig.resolve("faults", None, None, FACTS_72)
    assert rm.modelled and not rm.tree_not_modelled
    # the default tree (no facts) is 6.12: every field at its default
    assert runconfig.resolve("faults", None, None).config == KernelConfig()
    # a tree between 6.12 and 7.2 that does not report anon_vma_fork, slab_sheaves and
    # maple_write is not guessed (nor are maple sheaves without sheaves for every cache)
    mid = runconfig.resolve("faults", None, None, FACTS_72 | {"version": "6.16.1",
                                                               "version_tuple": [6, 16, 1]})
    assert {n.what for n in mid.tree_not_modelled} == {"kernel_facts.anon_vma_fork",
                                                        "kernel_facts.slab_sheaves",
                                                        "kernel_facts.maple_alloc",
                                                        "kernel_facts.maple_write"}


def test_no_vma_lock_and_anon_vma_first_per_copied_vma():
    """7.2 vm_area_dup(): kmem_cache_alloc(vm_area_cachep, GFP_KERNEL), vma_lock_init() (no
    allocation). anon_vma_fork(): anon_vma_alloc(), anon_vma_chain_alloc(GFP_KERNEL), then
    anon_vma_clone() with one anon_vma_chain_alloc(GFP_KERNEL) per parent chain entry: all
    GFP_KERNEL, all fatal (no GFP_NOWAIT try)."""
    parent, res = _fork([{"count": 3, "touch": "first"}])
    assert not [e for e in res.trace if e.cache == "vma_lock"]
    layout = from_dict({"name": "t", "groups": [{"count": 3, "touch": "first"}]}).layout()
    v = next(i for i, vm in enumerate(parent.vmas()) if vm.start == layout[0].start)
    mine = [(e.site, e.cache, e.gfp, e.on_fail, e.frees) for e in res.trace
            if e.vma_index == v and e.cache not in ("page", "kmalloc")]
    assert mine == [
        ("vm_area_dup", "vm_area_struct", GFP_KERNEL, "fatal", {}),
        ("anon_vma_fork", "anon_vma", GFP_KERNEL, "fatal", {"vm_area_struct": 1}),
        ("anon_vma_fork", "anon_vma_chain", GFP_KERNEL, "fatal", {"vm_area_struct": 1, "anon_vma": 1}),
        # cleanup_partial_anon_vmas() frees the 0 clones so far, then put_anon_vma() and
        # anon_vma_chain_free() the preallocated pair, and dup_mmap() the VMA
        ("anon_vma_clone", "anon_vma_chain", GFP_KERNEL, "fatal",
         {"vm_area_struct": 1, "anon_vma": 1, "anon_vma_chain": 1}),
    ]


def test_mt_dup_checks_only_the_root_and_takes_children_from_a_sheaf():
    """7.2 mas_dup_build(): mt_alloc_one() for the root (kmem_cache_alloc: one should_failslab);
    mas_dup_alloc() asks mas_alloc_nodes() for data_end + 1 >= 2 children per internal node,
    which come from kmem_cache_prefill_sheaf()/kmem_cache_refill_sheaf() (refill_objects(),
    no should_failslab) and kmem_cache_alloc_from_sheaf() (no should_failslab, no
    alloc_fastpath/alloc_slowpath count)."""
    parent, res = _fork([{"count": 300, "touch": "none"}])
    dup = [e for e in res.trace if e.site == "__mt_dup"]
    assert parent.tree.height >= 3
    assert [(e.kind, e.objects, e.counted) for e in dup[:1]] == [("single", 1, True)]
    assert all(e.kind == "sheaf" and not e.counted and e.objects >= 2 for e in dup[1:])
    assert sum(e.objects for e in dup) == parent.tree.node_count
    internal = sum(1 for n, _mn, _mx in parent.tree._walk() if not n.leaf)
    assert len(dup) - 1 == internal
    recs = records(from_dict({"name": "t", "groups": [{"count": 300, "touch": "none"}]}), "patched",
                   program="forkcount", config=CONFIG_72, measurements=("counts",))
    counts = recs[0]
    # the SLUB_STATS alloc counters see the root and nothing from the sheaf
    assert counts["maple_node_allocated"] == 1
    assert counts["maple_node_from_sheaf"] == counts["child_tree_nodes"] - 1


def test_each_cache_kmallocs_one_empty_sheaf_after_the_shrink():
    """The guest shrinks fork's caches right before fork(): pcs_flush_all() frees the spare
    and empties the main sheaf, barn_shrink() frees the barn's. slab_alloc_node(): first
    should_failslab(s), then alloc_from_pcs() -> __pcs_replace_empty_main() ->
    alloc_empty_sheaf() -> kmalloc (a second check, same gfp), once per cache; a failure
    there is absorbed (__slab_alloc_node() allocates from the slab)."""
    parent, res = _fork([{"count": 3, "touch": "first"}])
    sheaf = [e for e in res.trace if e.site == "alloc_empty_sheaf"]
    before = [res.trace[e.seq - 1].cache for e in sheaf]
    assert before == ["maple_node", "vm_area_struct", "anon_vma", "anon_vma_chain"]
    assert all(e.counted and e.on_fail == "absorbed" and e.cache == "kmalloc" for e in sheaf)
    assert [e.gfp for e in sheaf] == [GFP_KERNEL] * 4
    o = outcome(res, sheaf[1].check)
    assert o["fork"] == "success" and o["absorbed"]
    # failslab's cache-filter (kmemleak runs) counts only the flagged caches: not kmalloc
    filt = runconfig.resolve("faults", None, {"stack_filter": True, "function": "dup_mmap",
                                              "attrs": {"failslab": {"cache-filter": "Y",
                                                                     "ignore-gfp-wait": "N"}},
                                              "cache_filter": ["maple_node", "vm_area_struct",
                                                               "anon_vma", "anon_vma_chain"]},
                             FACTS_72)
    assert filt.modelled and not filt.config.sheaf_kmalloc_counted
    _, res_f = _fork([{"count": 3, "touch": "first"}], config=filt.config)
    assert len(res.counted) - len(res_f.counted) == 4


def test_a_failed_7_2_fork_is_torn_down_in_dup_mmap_without_a_marker():
    """7.2 dup_mmap() on failure: end = mpnt->vm_start of the failing VMA (0 when no VMA was
    written), unmap_region() + tear_down_vmas() release the copies ending at or before end,
    then __mt_destroy() frees every node of the child's tree (sheaf nodes included); no
    XA_ZERO_ENTRY is stored."""
    parent, res = _fork([{"count": 4, "touch": "first"}])
    vmas = [e for e in res.counted if e.site == "vm_area_dup"]
    third = vmas[2]
    o = outcome(res, third.check)
    assert o["fork"] == "ENOMEM" and o["marker"] is None
    assert o["stops_at"] == "failure point" and o["child_vmas_released"] == 2
    first, second = res.parent_vmas[res.copied[0]], res.parent_vmas[res.copied[1]]
    assert o["teardown_range"] == [hex(first[0]), hex(second[1])]
    assert o["freed_by_teardown"]["maple_node"] == parent.tree.node_count
    assert o["allocated"]["maple_node"] == 1  # what the alloc counters saw
    assert o["allocated"]["vm_area_struct"] == 2
    root = outcome(res, 1)
    assert root["site"] == "__mt_dup" and root["fork"] == "ENOMEM" and root["allocated"] == {}


def test_null_stores_need_one_node_only_for_a_new_root():
    """7.2 mas_prealloc_calc(): a split needs (height - vacant_height) * 2 + 1 nodes, a
    rebalance (height - sufficient or vacant) * 2 + 1, a spanning store ... * 3 + 1; the
    vacant/sufficient heights come from internal nodes, so at most height - 1 and every one
    of these is >= 3: only new_root and store_root ask for 1 node (mt_alloc_one, a check)."""
    t = MapleTree(rcu=False, alloc="sheaves")
    for i in range(200):
        t.store_range(0x1000 * (2 * i + 1), 0x1000 * (2 * i + 2) - 1, i + 1)
    assert t.height == 3
    mas = C.MaState(t, 0x3000, 0x3FFF)
    mas.status = C.ST_START
    wr = C.WrState(mas, None)
    wr.content = C.mas_start(mas)
    C.mas_wr_store_type(wr)
    vacant, sufficient = C._wr_heights(mas)
    # the walk passed the root (depth 0) and one internal node (depth 1)
    assert 0 <= vacant <= 2 and 0 <= sufficient <= 2
    for st in (C.WR_SPLIT, C.WR_REBALANCE, C.WR_SPANNING):
        assert C._prealloc_calc_7x(mas, st, t.height) >= 3
    assert C._prealloc_calc_7x(mas, C.WR_NEW_ROOT, t.height) == 1


@pytest.mark.parametrize("vclock", [False, True])
def test_vdso_layout(vclock):
    """7.2 map_vdso(): get_unmapped_area(image->size + __VDSO_PAGES (6) pages); [vdso] text at
    addr + 6 pages; [vvar] VDSO_NR_PAGES (4) at addr, VM_MIXEDMAP; [vvar_vclock]
    VDSO_NR_VCLOCK_PAGES (2) at addr + 4 pages, VM_PFNMAP. 6.12: [vvar] 4 pages VM_PFNMAP
    right below [vdso]."""
    mm = build_exec_image(params=ExecParams(vclock=vclock))
    special = [(v.special, v.start, v.end, v.flags) for v in mm.vmas() if v.special]
    text = next(s for s in special if s[0] == "[vdso]")
    vvar = next(s for s in special if s[0] == "[vvar]")
    assert text[2] - text[1] == 2 * PAGE_SIZE
    assert vvar[2] - vvar[1] == 4 * PAGE_SIZE
    if vclock:
        vc = next(s for s in special if s[0] == "[vvar_vclock]")
        assert (vc[1], vc[2]) == (vvar[1] + 4 * PAGE_SIZE, vvar[1] + 6 * PAGE_SIZE)
        assert text[1] == vvar[1] + 6 * PAGE_SIZE
        assert vvar[3] & VM_MIXEDMAP and vc[3] & VM_PFNMAP and not vvar[3] & VM_PFNMAP
    else:
        assert [s[0] for s in special] == ["[vvar]", "[vdso]"]
        assert text[1] == vvar[2] and vvar[3] & VM_PFNMAP


def test_6_12_predictions_do_not_change_with_the_new_fields():
    """The defaults are 6.12: records name only per_vma_lock in kernel_config, and a NULL
    store over a VM_DONTCOPY VMA still tries GFP_NOWAIT before the GFP_KERNEL retry."""
    sc = from_dict({"name": "t", "groups": [{"count": 30, "touch": "first"},
                                            {"count": 6, "advice": "dontfork"}]})
    recs = records(sc, "patched", program="faultsweep", measurements=("alloc_trace",))
    assert recs[0]["kernel_config"] == {"per_vma_lock": True}
    ev = recs[0]["events"]
    assert not [e for e in ev if e["kind"] == "sheaf" or e["site"] == "alloc_empty_sheaf"]
    assert all(e["gfp"] == GFP_NOWAIT for e in ev if e["site"] == "vma_iter_clear_gfp")


# scenarios/mixed-small.yaml's groups
MIXED_SMALL = [
    {"count": 8, "pages": 1, "prot": "rw", "kind": "anon", "advice": "none", "touch": "all"},
    {"count": 4, "pages": 2, "prot": "rw", "kind": "anon", "advice": "none", "touch": "none"},
    {"count": 3, "pages": 1, "prot": "rw", "kind": "anon", "advice": "dontfork", "touch": "all"},
    {"count": 3, "pages": 1, "prot": "rw", "kind": "anon", "advice": "wipeonfork", "touch": "all"},
    {"count": 2, "pages": 1, "prot": "r", "kind": "file", "advice": "none", "touch": "none"},
    {"count": 2, "pages": 1, "prot": "rw", "kind": "shared-anon", "advice": "none", "touch": "all"}]


def test_a_rebalance_frees_through_kfree_rcu_and_kmallocs_an_rcu_free_sheaf():
    """mixed-small on 7.2: the child's NULL store over the three adjacent VM_DONTCOPY VMAs
    rebalances the leaf 7.2's split left holding them (simulator.maple.write_copy, checked against
    7.2's lib/maple_tree.c by the oracle) and frees the replaced nodes with ma_free_rcu() =
    kfree_rcu(). The shrink before the fork took the rcu_free sheaf and the barn's, and the
    store's ma_state holds the spare (kmem_cache_prefill_sheaf), so __kfree_rcu_sheaf() kmallocs
    an empty sheaf: one check (alloc_empty_sheaf, __GFP_NOWARN: cannot sleep), once, since
    fewer than 32 nodes are freed. Measured on the 7.2.13 faults kernel (vm-test,
    docs/predictions.md): a successful fork makes 75 checks, and failing the 61st is absorbed
    and leaves one maple_node in use after the leak wait (kfree_rcu's own batches drain 5 s
    later)."""
    parent, res = _fork(MIXED_SMALL)
    rcu = [e for e in res.trace if e.site == "kfree_rcu_sheaf"]
    assert len(rcu) == 1
    e = rcu[0]
    assert (e.cache, e.gfp, e.on_fail, e.counted) == ("kmalloc", "__GFP_NOWARN", "absorbed", True)
    # right after the NULL store that frees (the store's sheaf nodes come first)
    prev = res.trace[e.seq - 1]
    assert prev.site == "vma_iter_clear_gfp" and prev.vma_index == e.vma_index
    assert len(res.counted) == 75 and e.check == 61
    o = outcome(res, e.check)
    assert o["fork"] == "success" and o["absorbed"] and o["pending"] == {"maple_node": 1}
    # the 6.12-shaped tree (big-node write path) made that store a node store: no free
    old = KernelConfig(**{**CONFIG_72.__dict__, "maple_write": "big_node"})
    _, res_old = _fork(MIXED_SMALL, config=old)
    assert not [x for x in res_old.trace if x.site == "kfree_rcu_sheaf"]
    assert len(res_old.counted) == len(res.counted) - 1
    # failslab's cache-filter does not count kmalloc: the event stays, uncounted
    filt = KernelConfig(**{**CONFIG_72.__dict__, "sheaf_kmalloc_counted": False})
    _, res_f = _fork(MIXED_SMALL, config=filt)
    assert [x.counted for x in res_f.trace if x.site == "kfree_rcu_sheaf"] == [False]


def test_every_32_kfree_rcu_nodes_need_a_new_rcu_free_sheaf():
    """__kfree_rcu_sheaf(): a sheaf that reaches the maple cache's sheaf_capacity (32,
    maple_tree_init()) goes to call_rcu() and pcs->rcu_free is NULL again, so the 33rd node
    kmallocs another one: 1, 33, 65 -> three kmallocs for 70 nodes."""
    from simulator.fork import _Tracer

    tr = _Tracer(SUITE, CONFIG_72)
    tr.kfree_rcu_sheaf(20, None)
    tr.kfree_rcu_sheaf(50, None)
    assert [e.site for e in tr.trace] == ["kfree_rcu_sheaf"] * 3
    assert tr.checks == 3
