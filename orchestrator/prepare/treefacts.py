"""What a kernel tree's source says about the code forkdiff tests: read once from the tree, at
grep level, and recorded as a JSON-able dict (`kernel_facts`) in the kernel build manifest and
in every observation record, next to `kernel_config`. The simulator's rules
(simulator/runconfig.py facts_problems) decide which of these facts it models.

Keys (values other than the ones listed are never produced; "unknown" where the source matches
none of the known shapes):
    version, version_tuple  the top Makefile's VERSION.PATCHLEVEL.SUBLEVEL (+EXTRAVERSION)
    dup_mmap_file           the file that defines the MMU dup_mmap() (kernel/fork.c before 6.16,
                            mm/mmap.c after; searched, not assumed)
    dup_mmap_model          "patched": dup_mmap() copies the tree with __mt_dup();
                            "baseline": it stores the VMAs one by one; "unknown": neither
                            (the tree's own kernel only, kernel-only checks)
    fork_failure            "marker": a failed fork marks the failure point with XA_ZERO_ENTRY
                            and exit_mmap() stops there; "teardown": dup_mmap() unmaps and tears
                            down the copied VMAs itself (tear_down_vmas/unmap_region);
                            "copies": the child's tree holds only the copies made so far
    vma_lock                "cache": struct vma_lock from vma_lock_cachep (6.4 to 6.14);
                            "embedded": vm_refcnt inside vm_area_struct; "none": no per-VMA lock
    maple_alloc             "ondemand": mas_preallocate() asks for the worst case (1 + 3 * height)
                            and mas_store() may allocate; "prealloc": mas_preallocate() computes
                            the store's exact need; "sheaves": nodes come from slab sheaves
                            (kmem_cache_prefill_sheaf)
    maple_write             how lib/maple_tree.c writes splits, rebalances and spanning stores:
                            "big_node" through struct maple_big_node (6.1 to 6.x), "maple_copy"
                            through struct maple_copy (7.x)
    vdso_vclock             the x86 vDSO has a separate [vvar_vclock] mapping
    slub_bulk_stats         SLUB_STATS count every object a bulk allocation takes from the CPU
                            free list (ALLOC_FASTPATH in the bulk allocator, as in 6.12); false
                            where only the objects ___slab_alloc() returns are counted (6.1)
    slub_debug_single       a debug cache (slub_debug flags F, Z, P, U or T) gets one object per
                            ___slab_alloc() call and never a CPU free list: the slow path returns
                            the object alloc_single_from_partial()/alloc_single_from_new_slab()
                            take, so every allocation, a bulk allocation's objects too, is one
                            ALLOC_SLOWPATH (6.1, 6.12: true; 7.2: false, its slow path has no
                            ___slab_alloc(), and its counters count bulk objects anyway). Used
                            where slub_bulk_stats is false (orchestrator/run/slubdebug.py)
    proc_heap               which VMAs /proc/pid/maps names [heap]: "strict" (6.12:
                            vma_is_initial_heap(), start < brk && end > start_brk) or "inclusive"
                            (6.1: start <= brk && end >= start_brk, so a VMA ending at start_brk,
                            e.g. the bss, is [heap] too); "unknown"
    anon_vma_fork           "clone_first": anon_vma_fork() calls anon_vma_clone() before it
                            allocates the child's anon_vma (6.12 and older); "alloc_first":
                            anon_vma_alloc() comes first (7.x) (mm/rmap.c)
    slab_sheaves            every slab cache allocates through per-CPU sheaves (mm/slub.c
                            computes each cache's capacity: calculate_sheaf_capacity)
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from ..errors import ForkdiffError

FACT_KEYS = ("version", "version_tuple", "dup_mmap_file", "dup_mmap_model", "fork_failure",
             "vma_lock", "maple_alloc", "vdso_vclock", "slub_bulk_stats", "slub_debug_single",
             "proc_heap", "anon_vma_fork", "slab_sheaves", "maple_write")
# Where dup_mmap() has lived; any other file that defines it is found by the search below.
DUP_MMAP_USUAL = ("kernel/fork.c", "mm/mmap.c")
SEARCH_DIRS = ("kernel", "mm")

_DUP_MMAP = re.compile(
    r"^[^\n;]*\bdup_mmap\(struct mm_struct \*mm,\s*struct mm_struct \*oldmm\)\s*\n\{", re.M)


# ------------------------------------------------------------------------ version
def makefile_version(path: str | Path) -> str:
    """"6.1.192" from the tree's top Makefile ("unknown" when unreadable)."""
    fields = {}
    try:
        head = (Path(path) / "Makefile").read_text(errors="replace").splitlines()[:12]
    except OSError:
        return "unknown"
    for line in head:
        m = re.match(r"^(VERSION|PATCHLEVEL|SUBLEVEL|EXTRAVERSION)\s*=\s*(\S*)", line)
        if m:
            fields[m.group(1)] = m.group(2)
    v = ".".join(x for x in (fields.get("VERSION"), fields.get("PATCHLEVEL"),
                             fields.get("SUBLEVEL")) if x)
    return (v + fields.get("EXTRAVERSION", "")) or "unknown"


def version_tuple(version: str) -> tuple[int, ...]:
    """"6.1.192" -> (6, 1, 192); "6.12-rc3" -> (6, 12); "unknown" -> ()."""
    nums = []
    for part in version.split("."):
        m = re.match(r"\d+", part)
        if not m:
            break
        nums.append(int(m.group()))
        if m.end() != len(part):
            break
    return tuple(nums)


# ------------------------------------------------------------------------ dup_mmap()
def _bodies(text: str) -> list[str]:
    out = []
    for m in _DUP_MMAP.finditer(text):
        end = text.find("\n}\n", m.end())
        out.append(text[m.end(): end if end >= 0 else len(text)])
    return out


def _candidate_files(tree: Path) -> list[str]:
    """Files that mention a dup_mmap() definition: the usual ones first, then every .c file
    under kernel/ and mm/ that grep finds (a tree may move it again)."""
    found = [f for f in DUP_MMAP_USUAL if (tree / f).is_file()]
    dirs = [d for d in SEARCH_DIRS if (tree / d).is_dir()]
    if dirs:
        res = subprocess.run(["grep", "-rlE", "--include=*.c", r"\bdup_mmap\(struct mm_struct", *dirs],
                             cwd=tree, capture_output=True, text=True)
        found += [f for f in sorted(res.stdout.split()) if f not in found]
    return found


def find_dup_mmap(tree: str | Path) -> tuple[str, str]:
    """(file relative to the tree, body) of the MMU dup_mmap(): of all definitions found the
    longest (!CONFIG_MMU trees have a two-line stub in mm/nommu.c or kernel/fork.c)."""
    tree = Path(tree)
    best: tuple[str, str] | None = None
    for rel in _candidate_files(tree):
        try:
            text = (tree / rel).read_text(errors="replace")
        except OSError as err:
            raise ForkdiffError(f"cannot read {tree / rel}: {err.strerror}",
                                "point at the top of a kernel tree") from None
        for body in _bodies(text):
            if best is None or len(body) > len(best[1]):
                best = (rel, body)
    if best is None:
        raise ForkdiffError(f"no dup_mmap() definition found in {tree} (searched "
                            f"{', '.join(DUP_MMAP_USUAL)} and every .c file under "
                            f"{', '.join(SEARCH_DIRS)})",
                            "forkdiff needs a kernel tree that defines dup_mmap()")
    return best


def model_of_body(body: str, where: str = "dup_mmap()") -> str:
    if re.search(r"\b__mt_dup\s*\(", body):
        return "patched"
    if re.search(r"\b(mas_expected_entries|vma_iter_bulk_alloc|vma_iter_bulk_store|"
                 r"vma_iter_store|mas_store)\s*\(", body):
        return "baseline"
    raise ForkdiffError(f"{where} neither calls __mt_dup() nor stores VMAs one by one",
                        "this tree's dup_mmap() is not one forkdiff models")


def model_or_unknown(body: str, where: str = "dup_mmap()") -> str:
    """model_of_body(), or "unknown" for a dup_mmap() of neither shape (a tree newer than the
    model): the run goes on with the tree's own kernel and kernel-only checks
    (simulator/runconfig.py tree_notice says so)."""
    try:
        return model_of_body(body, where)
    except ForkdiffError:
        return "unknown"


def detect_dup_mmap_model(tree_path: str | Path) -> str:
    """'patched' if the tree's dup_mmap() copies the tree with __mt_dup(), 'baseline' if it
    preallocates and stores VMAs one by one, 'unknown' if neither."""
    rel, body = find_dup_mmap(tree_path)
    return model_or_unknown(body, f"dup_mmap() in {Path(tree_path) / rel}")


def fork_failure_of_body(body: str, model: str) -> str:
    if model == "unknown":
        return "unknown"
    if model == "baseline":
        return "copies"
    if re.search(r"\b(tear_down_vmas|unmap_region)\s*\(", body):
        return "teardown"
    if "XA_ZERO_ENTRY" in body:
        return "marker"
    return "unknown"


# ------------------------------------------------------------------------ other facts
def _read(tree: Path, rel: str) -> str:
    try:
        return (tree / rel).read_text(errors="replace")
    except OSError:
        return ""


def vma_lock_of(mm_types_h: str) -> str:
    """From include/linux/mm_types.h."""
    if re.search(r"\bvm_refcnt\b", mm_types_h):
        return "embedded"
    if re.search(r"^struct vma_lock\s*\{", mm_types_h, re.M):
        return "cache"
    return "none"


def _function_body(text: str, name: str) -> str:
    m = re.search(rf"^[^\n;]*\b{name}\([^)]*\)\s*\n\{{", text, re.M)
    if not m:
        return ""
    end = text.find("\n}\n", m.end())
    return text[m.end(): end if end >= 0 else len(text)]


def maple_alloc_of(maple_tree_c: str) -> str:
    """From lib/maple_tree.c."""
    if re.search(r"\bkmem_cache_prefill_sheaf\s*\(", maple_tree_c):
        return "sheaves"
    body = _function_body(maple_tree_c, "mas_preallocate")
    if re.search(r"\b(mas_prealloc_calc|mas_wr_store_type)\s*\(", body):
        return "prealloc"
    if re.search(r"mas_mt_height\(mas\)\s*\*\s*3", body):
        return "ondemand"
    return "unknown"


def maple_write_of(maple_tree_c: str) -> str:
    """From lib/maple_tree.c: which struct its splits, rebalances and spanning stores copy the
    data through."""
    if re.search(r"\bstruct maple_copy\b", maple_tree_c):
        return "maple_copy"
    if re.search(r"\bstruct maple_big_node\b", maple_tree_c):
        return "big_node"
    return "unknown"


def vdso_vclock_of(tree: Path) -> bool:
    """A "[vvar_vclock]" special mapping in the x86 vDSO set-up."""
    folder = tree / "arch/x86/entry/vdso"
    for f in sorted(folder.glob("*.c")) if folder.is_dir() else []:
        if '"[vvar_vclock]"' in _read(tree, str(f.relative_to(tree))):
            return True
    return False


_ALLOC_BULK = re.compile(r"^[^\n;]*\b\w*alloc_bulk\w*\([^)]*\)\s*\n\{", re.M)


def slub_bulk_stats_of(slub_c: str) -> bool:
    """From mm/slub.c: does a bulk allocator function count the objects it takes (6.12:
    ALLOC_FASTPATH per object off the CPU free list; 7.x: ALLOC_SLOWPATH by the batch)? 6.1's
    kmem_cache_alloc_bulk() counts only what ___slab_alloc() returns."""
    for m in _ALLOC_BULK.finditer(slub_c):
        end = slub_c.find("\n}\n", m.end())
        body = slub_c[m.end(): end if end >= 0 else len(slub_c)]
        # 6.12: stat(s, ALLOC_FASTPATH) per object; 7.x: stat_add(s, ALLOC_SLOWPATH, i)
        if re.search(r"\bstat\(s, ALLOC_FASTPATH\)|\bstat_add\(s, ALLOC_\w+,", body):
            return True
    return False


_DEBUG_SINGLE_NEW = re.compile(
    r"kmem_cache_debug\(s\)\)\s*\{\s*(freelist|object)\s*=\s*alloc_single_from_new_slab\(")
_DEBUG_SINGLE_PARTIAL = re.compile(
    r"kmem_cache_debug\(s\)\)\s*\{\s*(void \*)?object\s*=\s*alloc_single_from_partial\(")


def slub_debug_single_of(slub_c: str) -> bool:
    """From mm/slub.c: does a debug cache's slow path hand out single objects without loading
    the CPU free list? Both of ___slab_alloc()'s sources must branch for kmem_cache_debug(s):
    the node's partial list (get_partial_node -> alloc_single_from_partial) and a new slab
    (alloc_single_from_new_slab)."""
    slow = _function_body(slub_c, "___slab_alloc")
    partial = _function_body(slub_c, "get_partial_node")
    return bool(_DEBUG_SINGLE_NEW.search(slow) and _DEBUG_SINGLE_PARTIAL.search(partial))


def vdso_pages_of_build(build_dir: str | Path) -> int | None:
    """From a kernel build (not the source: the vDSO's size is what the compiler made of it):
    the x86-64 vDSO image's pages (arch/x86/entry/vdso/vdso-image-64.c `.size`; 2 in the 6.12
    builds, 1 in 6.1's). None when the build has no such file."""
    try:
        text = (Path(build_dir) / "arch/x86/entry/vdso/vdso-image-64.c").read_text(errors="replace")
    except OSError:
        return None
    m = re.search(r"\.size\s*=\s*(\d+)", text)
    return -(-int(m.group(1)) // 4096) if m else None


def proc_heap_of(task_mmu_c: str, mm_h: str = "") -> str:
    """From fs/proc/task_mmu.c show_map_vma() (and vma_is_initial_heap() in
    include/linux/mm.h)."""
    if re.search(r"vm_start\s*<=\s*mm->brk\s*&&\s*vma->vm_end\s*>=\s*mm->start_brk", task_mmu_c):
        return "inclusive"
    if "vma_is_initial_heap(vma)" in task_mmu_c and re.search(
            r"vm_start\s*<\s*vma->vm_mm->brk\s*&&\s*vma->vm_end\s*>\s*vma->vm_mm->start_brk", mm_h):
        return "strict"
    return "unknown"


def anon_vma_fork_of(rmap_c: str) -> str:
    """From mm/rmap.c: which comes first in anon_vma_fork(), the clone or the allocation."""
    body = _function_body(rmap_c, "anon_vma_fork")
    alloc, clone = body.find("anon_vma_alloc("), body.find("anon_vma_clone(")
    if alloc < 0 or clone < 0:
        return "unknown"
    return "alloc_first" if alloc < clone else "clone_first"


def slab_sheaves_of(slub_c: str) -> bool:
    """From mm/slub.c: every cache gets per-CPU sheaves (a capacity computed per cache)."""
    return bool(re.search(r"\bcalculate_sheaf_capacity\s*\(", slub_c))


def detect(tree_path: str | Path) -> dict:
    """Every fact of FACT_KEYS, read from the tree's source (a ForkdiffError when the tree
    defines no dup_mmap(); one forkdiff cannot classify is "unknown")."""
    tree = Path(tree_path)
    version = makefile_version(tree)
    rel, body = find_dup_mmap(tree)
    model = model_or_unknown(body, f"dup_mmap() in {tree / rel}")
    maple = _read(tree, "lib/maple_tree.c")
    return {
        "version": version,
        "version_tuple": list(version_tuple(version)),
        "dup_mmap_file": rel,
        "dup_mmap_model": model,
        "fork_failure": fork_failure_of_body(body, model),
        "vma_lock": vma_lock_of(_read(tree, "include/linux/mm_types.h")),
        "maple_alloc": maple_alloc_of(maple),
        "maple_write": maple_write_of(maple),
        "vdso_vclock": vdso_vclock_of(tree),
        "slub_bulk_stats": slub_bulk_stats_of(_read(tree, "mm/slub.c")),
        "slub_debug_single": slub_debug_single_of(_read(tree, "mm/slub.c")),
        "proc_heap": proc_heap_of(_read(tree, "fs/proc/task_mmu.c"), _read(tree, "include/linux/mm.h")),
        "anon_vma_fork": anon_vma_fork_of(_read(tree, "mm/rmap.c")),
        "slab_sheaves": slab_sheaves_of(_read(tree, "mm/slub.c")),
    }
