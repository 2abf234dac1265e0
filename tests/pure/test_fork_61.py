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
CONFIG_61 = KernelConfig(per_vma_lock=False, maple_alloc="ondemand", vdso_pages=1, proc_heap="inclusive")


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
    assert recs[0]["kernel_config"] == {"per_vma_lock": False, "maple_alloc": "ondemand",
                                        "vdso_pages": 1, "proc_heap": "inclusive"}
    assert "vma_lock" not in recs[0]["objects"]


def _maps(config):
    sc = from_dict({"name": "t", "groups": [{"count": 2, "touch": "first"}]})
    recs = records(sc, "baseline", config=config, measurements=("child_maps",))
    return [(int(v["start"], 16), int(v["end"], 16), v["name"]) for v in recs[0]["vmas"]]


def test_a_one_page_vdso_moves_what_lies_below_it_up_a_page():
    """arch/x86/entry/vdso/vma.c map_vdso(): one get_unmapped_area() of vvar + vdso pages
    below mmap_base, [vvar] (4 pages) first, the vDSO text above it. 6.1's image is 1 page:
    the text still ends at the same address, and [vvar] starts a page higher."""
    two, one = _maps(CONFIG_61.__class__(per_vma_lock=False)), _maps(CONFIG_61)
    vdso2, vdso1 = next(v for v in two if v[2] == "[vdso]"), next(v for v in one if v[2] == "[vdso]")
    vvar2, vvar1 = next(v for v in two if v[2] == "[vvar]"), next(v for v in one if v[2] == "[vvar]")
    assert vdso2[1] - vdso2[0] == 2 * 4096 and vdso1[1] - vdso1[0] == 4096
    assert vdso1[1] == vdso2[1] and vvar1[0] == vvar2[0] + 4096
    assert vvar1[1] - vvar1[0] == vvar2[1] - vvar2[0] == 4 * 4096


def test_6_1_names_the_vma_ending_at_start_brk_heap():
    """fs/proc/task_mmu.c show_map_vma(): 6.1 tests start <= brk && end >= start_brk, so the
    bss VMA that ends where the brk area starts is [heap] too; 6.12's vma_is_initial_heap()
    (start < brk && end > start_brk) leaves it unnamed."""
    sc = from_dict({"name": "t", "groups": [{"count": 2, "touch": "first"}]})
    parent = build_parent(sc)
    below = [v for v in parent.vmas() if v.end == parent.start_brk and v.file is None]
    assert below, "the default static binary has a bss VMA ending at start_brk"
    strict = dict(((s, e), n) for s, e, n in _maps(KernelConfig(per_vma_lock=False, vdso_pages=1)))
    incl = dict(((s, e), n) for s, e, n in _maps(CONFIG_61))
    key = (below[0].start, below[0].end)
    assert strict[key] == "" and incl[key] == "[heap]"


def test_without_a_stack_filter_every_page_allocation_of_fork_counts():
    """6.1 FAULTS=page (no stack filter on x86-64 before 6.3): fail_page_alloc counts every
    page allocation of the fork syscall. From kernel/fork.c copy_process(): dup_task_struct()
    -> alloc_thread_stack_node() (no VMAP_STACK: alloc_pages_node(THREAD_SIZE_ORDER = 2)),
    then copy_mm() -> mm_init() -> pgd_alloc() (order 0, no PTI), then dup_mmap()'s page
    tables. Each of the first two failing: ENOMEM before dup_mmap() allocates anything."""
    page_only = FaultSettings(failslab_ignore_gfp_wait=False, page_ignore_gfp_wait=False,
                              page_min_order=0, stack_filter=None, slab_counted=False)
    assert page_only.page_scope == "fork" and page_only.modelled_prefix
    sc = from_dict({"name": "t", "groups": [{"count": 3, "touch": "all"}]})
    parent = build_parent(sc, tree_factory=lambda: MapleTree(alloc=CONFIG_61.maple_alloc))
    res = dup_mmap(parent, "baseline", page_only, CONFIG_61)
    sites = [e.site for e in res.counted]
    assert sites[:2] == ["alloc_thread_stack_node", "pgd_alloc"]
    assert set(sites[2:]) == {"copy_page_range"}  # no slab check counts
    for k in (1, 2):
        o = outcome(res, k)
        assert o["fork"] == "ENOMEM" and o["child_vmas_released"] == 0 and o["marker"] is None
        assert o["allocated"] == {} and o["page_tables_allocated"] == {} and o["teardown_range"] is None
    # the first page table fails with the stack and the pgd allocated, no VMA copy released yet
    # beyond the one being copied
    assert outcome(res, 3)["level"] == "pud"
    # min-order 1: the order-2 stack still counts, the order-0 pgd and page tables do not
    order1 = FaultSettings(failslab_ignore_gfp_wait=False, page_ignore_gfp_wait=False,
                           page_min_order=1, stack_filter=None, slab_counted=False)
    res = dup_mmap(parent, "baseline", order1, CONFIG_61)
    assert [e.site for e in res.counted] == ["alloc_thread_stack_node"]
    # with the copy_page_range stack filter (6.3 on) nothing of copy_process() counts
    filtered = FaultSettings(failslab_ignore_gfp_wait=False, page_ignore_gfp_wait=False,
                             page_min_order=0, page_stack_filter="copy_page_range")
    res = dup_mmap(parent, "baseline", filtered, CONFIG_61)
    assert "pgd_alloc" not in [e.site for e in res.counted]


def test_fork_scope_is_modelled_only_when_the_guest_said_so():
    """runconfig: page allocations counted without a stack filter are modelled when the record
    says page_scope "fork" (faultsetup raised min_partial), else not modelled."""
    from simulator.runconfig import fault_settings

    rec = {"stack_filter": False, "function": "", "faults": ["page"], "page_function": "",
           "cache_filter": [], "attrs": {
               "failslab": {"ignore-gfp-wait": "N", "cache-filter": "Y"},
               "fail_page_alloc": {"ignore-gfp-wait": "N", "min-order": "0"}}}
    s, bad, _ = fault_settings("faults", rec | {"page_scope": "fork"})
    assert not bad and s.page_scope == "fork" and not s.slab_counted
    _, bad, _ = fault_settings("faults", rec)
    assert [b.what for b in bad] == ["fault_settings.fail_page_alloc"]
    # __GFP_HIGHMEM counted: the parent's page faults around fork() would be checks too
    highmem = {"ignore-gfp-wait": "N", "min-order": "0", "ignore-gfp-highmem": "N"}
    _, bad, _ = fault_settings("faults", rec | {"page_scope": "fork", "attrs": rec["attrs"] | {
        "fail_page_alloc": highmem}})
    assert [b.what for b in bad] == ["fault_settings.fail_page_alloc"]
