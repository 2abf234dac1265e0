"""The page-table walk counts of simulator.work (pte_slots, pmd_slots, exit_pte_slots,
exit_pmd_slots), checked against values derived by hand from mm/memory.c (6.12):
copy_pmd_range() steps through every PMD entry of a copied VMA's range under a PMD table and
copy_pte_range() through every PTE slot of it under a PTE table, none entries included
(`pte_none(ptent)`: progress++, continue; the loop runs `addr != end`); zap_pmd_range() /
zap_pte_range() do the same over every VMA of the exiting child. A region without a table is
skipped at the level above (pmd_none_or_clear_bad()), so its slots cost nothing."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

from simulator.exec_image import DEFAULT_ELF, Segment
from simulator.fork import dup_mmap
from simulator.mm import PAGE_SHIFT, PMD_SHIFT, PROT_READ, PROT_WRITE, PUD_SHIFT
from simulator.predict import build_parent
from simulator.scenario import from_dict
from simulator.work import fork_work, walk_entries

MiB = 1 << 20
BASE = 0x100000000  # 1 GiB aligned, so 2 MiB aligned


def _vma(start: int, end: int) -> SimpleNamespace:
    return SimpleNamespace(start=start, end=end)


def test_walk_entries_counts_slots_only_under_tables():
    """A VMA from one page below 2 MiB to two pages above 4 MiB meets three 2 MiB regions:
    1 page in region 0, 512 in region 1, 2 in region 2; the PTE walk visits the slots of the
    regions that have a PTE table, and at the PMD level the three entries of the 1 GiB
    region (one PMD table)."""
    v = _vma(2 * MiB - 0x1000, 4 * MiB + 0x2000)
    assert walk_entries(v, {0, 1, 2}, PMD_SHIFT, PAGE_SHIFT) == 1 + 512 + 2
    assert walk_entries(v, {0, 2}, PMD_SHIFT, PAGE_SHIFT) == 1 + 2
    assert walk_entries(v, set(), PMD_SHIFT, PAGE_SHIFT) == 0
    assert walk_entries(v, {0}, PUD_SHIFT, PMD_SHIFT) == 3
    assert walk_entries(v, {1}, PUD_SHIFT, PMD_SHIFT) == 0


def _work(touch: str, elf=DEFAULT_ELF) -> dict:
    """One 3 MiB rw anonymous VMA at BASE (768 pages: 512 in its first 2 MiB region, 256 in
    the next), `touch` first or all of its pages."""
    sc = from_dict({"name": "big", "base": hex(BASE),
                    "groups": [{"count": 1, "pages": 768, "touch": touch}]})
    parent = build_parent(sc, "spawn", None, elf)
    return fork_work(parent, dup_mmap(parent, "baseline"))


def test_a_written_page_in_a_new_region_adds_its_vmas_slots_there():
    """Writing every page of the 3 MiB VMA instead of only its first gives the parent a PTE
    table in the second 2 MiB region too: fork copies 767 more ptes and steps through the 256
    slots the VMA has there (copy and zap alike); the PMD entries walked are the same (the
    VMA's two, under the one PMD table either way)."""
    first, every = _work("first"), _work("all")
    assert every["ptes_copied"] - first["ptes_copied"] == 767
    assert every["pt_pages"] - first["pt_pages"] == 1
    assert every["pte_slots"] - first["pte_slots"] == 256
    assert every["exit_pte_slots"] - first["exit_pte_slots"] == 256
    assert every["pmd_slots"] == first["pmd_slots"]
    assert every["exit_pmd_slots"] == first["exit_pmd_slots"]


def _big_bss_elf(with_groups_store: bool):
    """DEFAULT_ELF with the data segment's bss grown to end at 0x17ca000 (regions 2 to 11,
    as the guest programs' 20 MiB of static layout tables make it) and, optionally, the
    layout builder's groups_store at 0x13c5460 (region 9), whose first page a group
    scenario writes before fork."""
    loads = list(DEFAULT_ELF.loads)
    data = loads[-1]
    loads[-1] = Segment(data.vaddr, data.offset, data.filesz, 0x17ca000 - data.vaddr,
                        PROT_READ | PROT_WRITE)
    bufs = (("groups_store", 0x13C5460),) if with_groups_store else ()
    return replace(DEFAULT_ELF, loads=tuple(loads), buffers=bufs)


def test_groups_store_page_makes_the_bss_walk_a_whole_region():
    """The bss VMA is copied (it has an anon_vma). Region 9 lies wholly inside it; once the
    groups_store page there is written, the parent has a PTE table in it and fork steps
    through all 512 slots of the region (copy_pte_range) and the child's exit through them
    again (zap_pte_range), for one more pte copied and one more page-table page."""
    without, with_ = _work("first", _big_bss_elf(False)), _work("first", _big_bss_elf(True))
    assert with_["pte_slots"] - without["pte_slots"] == 512
    assert with_["exit_pte_slots"] - without["exit_pte_slots"] == 512
    assert with_["ptes_copied"] - without["ptes_copied"] == 1
    assert with_["pt_pages"] - without["pt_pages"] == 1
    assert with_["pmd_slots"] == without["pmd_slots"]


def test_a_20_mib_bss_is_walked_at_every_pmd_entry():
    """The grown bss spans PMD entries 2 to 11 (0x4a7000 .. 0x17ca000): copy_pmd_range() and
    zap_pmd_range() visit each of its 10 entries, where the small bss of DEFAULT_ELF (within
    region 2) is one entry; everything else in the process is the same, so the walks differ
    by 9 entries (the heap after the bss moves from region 2 to region 11, one entry
    either way)."""
    small, big = _work("first"), _work("first", _big_bss_elf(False))
    assert big["pmd_slots"] - small["pmd_slots"] == 9
    assert big["exit_pmd_slots"] - small["exit_pmd_slots"] == 9


def test_work_cache_is_keyed_by_the_spawn_binary(tmp_path, monkeypatch):
    """orchestrator.analysis.insn_calibration.work_for() caches work counts on disk; a spawn
    binary with another bss must not get the first binary's counts back (before, the key had
    no ELF and a grown bss kept its old page-table counts). The cache is a temporary folder."""
    from orchestrator.analysis import insn_calibration as ic

    monkeypatch.setenv("FORKDIFF_CACHE", str(tmp_path))
    monkeypatch.setattr(ic, "_WORK_CACHE", {})
    sc = {"name": "seed", "base": hex(BASE), "gap_pages": 1,
          "groups": [{"count": 1, "pages": 1, "touch": "all"}], "total_vmas": 21}
    small = ic.work_for(sc, "baseline", elf=DEFAULT_ELF)
    big = ic.work_for(sc, "baseline", elf=_big_bss_elf(True))
    # the grown bss: 9 more PMD entries, and region 9 (groups_store) and 11 (libc's bss
    # tail, with the heap) under PTE tables
    assert big["pmd_slots"] - small["pmd_slots"] == 9
    assert big["pte_slots"] > small["pte_slots"] + 512
    monkeypatch.setattr(ic, "_WORK_CACHE", {})  # from the disk cache now
    assert ic.work_for(sc, "baseline", elf=_big_bss_elf(True)) == big
    assert ic.work_for(sc, "baseline", elf=DEFAULT_ELF) == small
