"""Scenario -> prediction records (JSON-able dicts, one per measurement); see
docs/predictions.md for the fields. The parent process is replayed as the guest program builds
it (guest/layout.c): exec image, then per layout VMA mmap(MAP_FIXED_NOREPLACE) -> madvise ->
writes; spawn/forkcount also fill up to --total VMAs and map+unmap a /proc/self/maps buffer."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, replace
from functools import partial
from typing import Any

from . import scenario as scenario_mod
from .exec_image import (
    BUFFER_SYMBOLS,
    DEFAULT_ELF,
    LAYOUT_SYMBOLS,
    MMAP_BASE,
    ElfInfo,
    ExecParams,
    build_exec_image,
)
from .fork import (
    SUITE_SETTINGS,
    FaultSettings,
    ForkResult,
    KernelConfig,
    dup_mmap,
    outcomes,
    page_tables,
    slab_objects,
)
from .maple import MapleTree
from .mm import PAGE_SIZE, PROT_READ, PROT_WRITE, PROTS, VM_NORESERVE, Mm, page_align
from .scenario import Scenario
from .work import fork_work

DEFAULT_PARAMS = ExecParams()
DEFAULT_CONFIG = KernelConfig()
LAYOUT_FILE = scenario_mod.LAYOUT_FILE  # guest/layout.h
PROGRAMS = ("mapsprobe", "faultsweep", "spawn", "forkcount")
MEASUREMENTS = ("child_maps", "map_count", "counts", "alloc_trace", "fault_outcome",
                "op_counts")


def build_parent(scenario: Scenario, program: str = "mapsprobe", total: int | None = None,
                 elf: ElfInfo = DEFAULT_ELF, params: ExecParams = DEFAULT_PARAMS,
                 tree_factory: Callable[[], Any] | None = None) -> Mm:
    """The guest program's mm just before it calls fork()."""
    if program not in PROGRAMS:
        raise ValueError(f"unknown guest program {program!r} (one of {', '.join(PROGRAMS)})")
    mm = build_exec_image(elf, params, tree_factory)
    file_inode = 1_000_000  # a stand-in inode: maps comparisons use the file's name
    for lv in scenario.layout():
        shared = lv.kind in ("shared-anon", "shared-file")
        path = lv.path
        inode = 0 if path is None else file_inode + (0 if lv.file is None else 1 + lv.file)
        v = mm.mmap(lv.start, lv.end - lv.start, PROTS[lv.map_prot], shared=shared,
                    file=path, inode=inode, offset=lv.offset,
                    extra_flags=VM_NORESERVE if lv.noreserve else 0)
        if v.start != lv.start or v.end != lv.end:
            raise ValueError(f"{scenario.source}: layout VMA at {lv.start:#x} merges with a "
                             "neighbour in the kernel (the guest builder would fail)")
        if lv.advice != "none":
            mm.madvise(lv.start, lv.end - lv.start, lv.advice)
        for p in range(lv.touched):
            mm.write_fault(lv.start + p * PAGE_SIZE)
        if lv.map_prot != lv.prot:
            mm.mprotect(lv.start, lv.end - lv.start, PROTS[lv.prot])
    # static storage the guest program writes before it forks: faultsweep's read_maps(before)
    # for layout_verify(), read_maps(now) once before the probe and the JSON lines held in obuf
    # (BUFFER_SYMBOLS: their first pages; the maps text of the scenarios stays far inside one
    # 2 MiB region), and, in every program whose fork is measured, the layout builder's groups
    # of a group scenario (guest/layout.c groups_store, written while the arguments are
    # parsed): present bss pages, with PTE tables where the bss has none otherwise, that fork
    # copies and the child's exit frees
    written = (BUFFER_SYMBOLS if program == "faultsweep" else ()) + (
        LAYOUT_SYMBOLS if program in ("faultsweep", "spawn", "forkcount") and not scenario.is_list else ())
    for name in written:
        addr = elf.buffer(name)
        if addr is not None:
            mm.write_fault(addr)
    if program in ("spawn", "forkcount"):
        nxt = scenario.next_addr
        start = nxt + (PAGE_SIZE if scenario.fill_gap_pages == 0 else 0)
        fill = 0
        if total is not None:
            if mm.map_count > total:
                raise ValueError(f"the process already has {mm.map_count} VMAs, more than "
                                 f"--total {total}")
            fill = total - mm.map_count
            for i in range(fill):
                mm.mmap(start + 2 * i * PAGE_SIZE, PAGE_SIZE, PROT_READ | PROT_WRITE)
        # layout_verify_self(): a temporary buffer for /proc/self/maps, unmapped again
        cap = page_align((scenario.layout_count + fill + 4096) * 160)
        addr = mm.get_unmapped_area_topdown(cap, MMAP_BASE)
        mm.mmap(addr, cap, PROT_READ | PROT_WRITE)
        for a in range(addr, addr + cap, PAGE_SIZE):  # read_file() writes the text
            mm.write_fault(a)
        mm.munmap(addr, cap)
    return mm


def _maps_entry(d: dict) -> dict:
    return {"start": hex(d["start"]), "end": hex(d["end"]), "perms": d["perms"],
            "offset": d["offset"], "file": d["file"], "name": d["name"]}


def records(scenario: Scenario, variant: str, *, program: str = "mapsprobe",
            total: int | None = None, settings: FaultSettings = SUITE_SETTINGS,
            config: KernelConfig = DEFAULT_CONFIG, elf: ElfInfo = DEFAULT_ELF,
            params: ExecParams = DEFAULT_PARAMS, measurements: tuple[str, ...] = MEASUREMENTS,
            tree_factory: Callable[[], Any] | None = None, parent: Mm | None = None,
            replace_entries: bool = False) -> list[dict]:
    """Prediction records of one scenario and variant. `parent` may be passed to share one
    replayed parent between variants (dup_mmap does not modify it)."""
    if params.vdso_pages != config.vdso_pages:  # the booted kernel's vDSO (runconfig)
        params = replace(params, vdso_pages=config.vdso_pages)
    if config.vdso_vclock and not params.vclock:  # the kernel's vDSO layout (7.x)
        params = replace(params, vclock=True)
    if parent is None:
        parent = build_parent(scenario, program, total, elf, params,
                              tree_factory or partial(MapleTree, alloc=config.maple_alloc,
                                                     write=config.maple_write))
    parent.proc_heap_inclusive = config.proc_heap == "inclusive"  # how maps renders [heap]
    res = dup_mmap(parent, variant, settings, config, replace_entries=replace_entries)
    return [r | {"kernel_config": config.record()}
            for r in fork_records(scenario.name, parent, res, measurements, program)]


def fork_records(name: str, parent: Mm, res: ForkResult,
                 measurements: tuple[str, ...] = MEASUREMENTS,
                 program: str = "mapsprobe") -> list[dict]:
    base = {"source": "simulator", "variant": res.variant, "scenario": name, "program": program}
    sets = asdict(res.settings)
    out: list[dict] = []
    if "child_maps" in measurements:
        pmaps = {(m["start"], m["end"]): m for m in parent.maps()}
        vmas = [_maps_entry(pmaps[(c.start, c.end)]) | {"anon_vma": c.anon_vma,
                                                         "wipeonfork": c.wipeonfork}
                for c in res.child]
        out.append(base | {"measurement": "child_maps", "map_count": res.child_map_count,
                           "vmas": vmas})
    if "map_count" in measurements:
        out.append(base | {"measurement": "map_count", "parent": res.parent_map_count,
                           "child": res.child_map_count, "parent_after": parent.map_count,
                           "parent_total_vm": res.parent_total_vm,
                           "child_total_vm": res.child_total_vm})
    if "counts" in measurements:
        objs: dict[str, int] = {}
        for e in res.trace:
            objs[e.cache] = objs.get(e.cache, 0) + e.objects
        objs["maple_node"] = objs.get("maple_node", 0) - res.ops["nodes_freed"]
        out.append(base | {"measurement": "counts", "objects": objs,
                           "maple_node_allocated": res.ops["nodes_allocated"]
                           - res.ops["nodes_from_sheaf"],
                           "allocated_in_bulk": slab_objects(res.trace, ("bulk",)),
                           "maple_node_freed": res.ops["nodes_freed"],
                           "child_tree_nodes": res.ops["child_nodes"],
                           "child_tree_height": res.ops["child_height"],
                           "allocations": len(res.trace), "checks": len(res.counted),
                           "slab_checks": sum(1 for e in res.counted if e.cache != "page"),
                           "page_checks": sum(1 for e in res.counted if e.cache == "page"),
                           "page_tables": page_tables(res.trace),
                           # page checks outside copy_page_range (page_scope "fork": the
                           # child's thread stack and pgd, kernel/fork.c copy_process())
                           "fork_page_checks": sum(1 for e in res.counted if e.cache == "page"
                                                   and e.site != "copy_page_range"),
                           "settings": sets}
                   | ({"maple_node_from_sheaf": res.ops["nodes_from_sheaf"]}
                      if res.ops["nodes_from_sheaf"] else {}))
    if "alloc_trace" in measurements:
        out.append(base | {"measurement": "alloc_trace", "settings": sets,
                           "checks": len(res.counted),
                           "events": [e.to_dict() for e in res.trace]})
    if "fault_outcome" in measurements:
        for o in outcomes(res):
            out.append(base | {"measurement": "fault_outcome", "settings": sets} | o)
    if "op_counts" in measurements:
        out.append(base | {"measurement": "op_counts", "ops": dict(res.ops),
                           "work": fork_work(parent, res)})
    return out
