"""Page-table allocation faults (FAULTS=slab,page): which PUD/PMD/PTE pages the child's
copy_page_range() allocates, in which order among the slab allocations, and what a failure of
one of them does. Expected values are worked out by hand from mm/memory.c (6.12):
copy_page_range() -> copy_p4d_range() (p4d folded: pgd) -> copy_pud_range(): pud_alloc() for
the child once per pgd entry (512 GiB) the VMA spans where the parent has a PUD table ->
copy_pmd_range(): pmd_alloc() once per PUD entry (1 GiB) where the parent has a PMD table ->
copy_pte_range(): pte_alloc() once per PMD entry (2 MiB) where the parent has a PTE table; an
allocation only where the child has no table there yet. vma_needs_copy(): only VMAs with an
anon_vma (or VM_PFNMAP/VM_MIXEDMAP) are copied at all."""

from __future__ import annotations

from simulator.fork import (
    PAGE_SETTINGS,
    SUITE_SETTINGS,
    KernelConfig,
    dup_mmap,
    outcome,
    page_tables,
)
from simulator.predict import build_parent
from simulator.runconfig import fault_settings
from simulator.scenario import from_dict

GiB, MiB, PAGE = 1 << 30, 1 << 20, 4096
BASE = 0x100000000  # the scenarios' default base: 4 GiB, 1 GiB-aligned


def _layout_events(res, lo=BASE, hi=BASE + GiB):
    return [e for e in res.trace if e.cache == "page" and lo <= e.vma_start < hi]


def _parent():
    """VMA A: 1024 pages (4 MiB) at 4 GiB, every page written -> PTE tables for 2 MiB regions
    0x800 and 0x801; VMA B one page after A's end, written -> region 0x802; VMA C untouched
    (no anon_vma: not copied); VMA D: written, 2 MiB + 2 pages further, in region 0x803."""
    return build_parent(from_dict({"name": "pt", "gap_pages": 1, "groups": [
        {"count": 1, "pages": 1024, "touch": "all"},
        {"count": 1, "pages": 1, "touch": "all"},
        {"count": 1, "pages": 1, "touch": "none"},
        {"count": 1, "pages": 510, "touch": "none"},
        {"count": 1, "pages": 1, "touch": "all"}]}))


def test_page_tables_per_vma_by_hand():
    parent = _parent()
    res = dup_mmap(parent, "patched", PAGE_SETTINGS)
    got = [(e.vma_start - BASE, e.level) for e in _layout_events(res)]
    a, b = 0, 4 * MiB + PAGE
    d = b + PAGE + PAGE + PAGE + PAGE + 510 * PAGE + PAGE  # B, gap, C, gap, 510 pages, gap
    assert d == 6 * MiB + 4 * PAGE  # region 0x803 (6..8 MiB)
    # A: the 1 GiB region at 4 GiB is new to the child (a PMD page; the PUD page of pgd 0 came
    # with the exec image's data VMA at 0x4a0000), then one PTE page per 2 MiB it spans
    assert got == [(a, "pmd"), (a, "pte"), (a, "pte"), (b, "pte"), (d, "pte")]


def test_no_tables_without_vma_needs_copy_or_parent_table():
    parent = _parent()
    res = dup_mmap(parent, "patched", PAGE_SETTINGS)
    untouched = {v.start for v in parent.vmas() if v.anon_vma is None and BASE <= v.start < BASE + GiB}
    assert len(untouched) == 2
    assert not any(e.vma_start in untouched for e in res.trace if e.cache == "page")
    # whole fork: the exec image's data VMA takes pgd 0's PUD, the 0 GiB PMD and a PTE page;
    # the top of the address space (vvar, then the stack) another PUD, PMD and two PTEs
    assert page_tables(res.trace) == {"pud": 2, "pmd": 3, "pte": 1 + 2 + 4}


def test_page_checks_interleave_after_each_vmas_slab_allocations():
    """The page checks of a VMA come after its vm_area_dup/vma_lock/anon_vma_fork checks and
    before the next VMA's; with FAULTS=slab they are not checks at all."""
    parent = _parent()
    res = dup_mmap(parent, "patched", PAGE_SETTINGS)
    slab_only = dup_mmap(parent, "patched", SUITE_SETTINGS)
    pages = [e for e in res.counted if e.cache == "page"]
    assert len(res.counted) == len(slab_only.counted) + len(pages)
    assert not any(e.cache == "page" for e in slab_only.counted)
    for e in pages:
        before = res.counted[e.check - 2]
        after = res.counted[e.check] if e.check < len(res.counted) else None
        assert before.vma_index == e.vma_index
        assert after is None or after.vma_index > e.vma_index or after.cache == "page"
    assert [e.check for e in res.counted] == list(range(1, len(res.counted) + 1))


def test_failed_page_table_marks_the_next_vma_and_frees_every_table():
    """6.12 dup_mmap(): copy_page_range() fails -> mpnt = vma_next(&vmi): the marker goes on
    the VMA after the failing one, which is linked and released with its partial tables."""
    parent = _parent()
    res = dup_mmap(parent, "patched", PAGE_SETTINGS)
    second_pte = [e for e in _layout_events(res)][2]  # A's second PTE page
    o = outcome(res, second_pte.check)
    i = second_pte.vma_index
    assert o["fork"] == "ENOMEM" and o["site"] == "copy_page_range" and o["level"] == "pte"
    assert o["marker"]["vma_index"] == i + 1
    assert o["marker"]["start"] == hex(res.parent_vmas[i + 1][0])
    assert o["child_vmas_released"] == sum(1 for j in res.copied if j <= i)
    assert o["teardown_range"][1] == hex(res.parent_vmas[i][1])
    assert o["frees"] == {} and o["freed_by_error_path"] == {}
    before = [e for e in res.trace[:second_pte.seq] if e.cache == "page"]
    assert sum(o["page_tables_allocated"].values()) == len(before)
    assert o["page_tables_freed"] == o["page_tables_allocated"]
    assert o["page_tables_allocated"]["pte"] == 1 + 1  # the data VMA's, A's first


def test_failed_page_table_on_72_tears_down_through_the_failing_vma():
    """7.x dup_mmap(): end = mpnt->vm_start of the next VMA, so unmap_region() and
    tear_down_vmas() release the failing VMA too; no marker."""
    parent = _parent()
    cfg = KernelConfig(per_vma_lock=True, vma_lock="embedded", fork_failure="teardown",
                       anon_vma_fork="alloc_first")
    res = dup_mmap(parent, "patched", PAGE_SETTINGS, cfg)
    e = _layout_events(res)[0]
    o = outcome(res, e.check)
    assert o["fork"] == "ENOMEM" and o["marker"] is None and o["stops_at"] == "failure point"
    assert o["child_vmas_released"] == sum(1 for j in res.copied if j <= e.vma_index)


def test_recorded_settings_select_page_counting():
    attrs = {"failslab": {"ignore-gfp-wait": "N", "cache-filter": "N"},
             "fail_page_alloc": {"ignore-gfp-wait": "N", "min-order": "0"}}
    rec = {"stack_filter": True, "function": "dup_mmap", "attrs": attrs,
           "faults": ["slab", "page"], "page_function": "copy_page_range"}
    s, bad, _ = fault_settings("faults", rec)
    assert not bad and s.counts("page", True) and s.counts("slab", True)
    s, bad, _ = fault_settings("faults", rec | {"faults": ["page"]})
    assert not bad and s.counts("page", True) and not s.counts("slab", True)
    # page allocations counted without the copy_page_range filter: new slab pages count too
    s, bad, _ = fault_settings("faults", rec | {"page_function": ""})
    assert [b.what for b in bad] == ["fault_settings.fail_page_alloc"]


def test_report_strips_mark_page_table_cells():
    import pandas as pd

    from orchestrator.analysis.report import fault_strips

    base = {"variant": "patched", "model": "patched", "scenario": "s", "measurement": "fault_outcome",
            "verdict": "match", "observed": "ENOMEM", "predicted": "ENOMEM"}
    df = pd.DataFrame([base | {"key": "k=1", "detail": "vm_area_dup (vm_area_struct, GFP_KERNEL)"},
                       base | {"key": "k=2", "detail": "copy_page_range (page, GFP_PGTABLE_USER)"}])
    (strip,) = fault_strips(df)
    assert [c["page"] for c in strip["cells"]] == [False, True] and strip["page_checks"] == 1
