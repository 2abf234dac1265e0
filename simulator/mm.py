"""The process address space as the 6.12 kernel keeps it: VMAs with the flags that matter to
fork(), the merge and split rules, and each mm operation replayed as the maple tree operations
the kernel performs (mm/mmap.c, mm/vma.c, mm/mprotect.c, mm/madvise.c, mm/rmap.c).

The maple tree holds small integer VMA ids (the oracle stores the same ids as xa_mk_value()),
and `Mm.history` records every tree operation in order, so the same history can be replayed on
the kernel's own lib/maple_tree.c (orchestrator.prepare.oracle) and the two trees compared.

Page tables are modelled by presence only: which 2 MiB (PTE table), 1 GiB (PMD table) and
512 GiB (PUD table) regions hold a mapped page. That is what copy_page_range() (mm/memory.c)
looks at when it decides which tables the child allocates.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

PAGE_SIZE = 4096
PAGE_SHIFT = 12
PMD_SHIFT = 21  # one PTE table maps 2 MiB
PUD_SHIFT = 30  # one PMD table maps 1 GiB
PGDIR_SHIFT = 39  # one PUD table maps 512 GiB (4-level paging, p4d folded)
TASK_SIZE = 0x7FFF_FFFF_F000  # TASK_SIZE_MAX == STACK_TOP_MAX == STACK_TOP for 64-bit tasks

# vm_flags bits (include/linux/mm.h); only those the model uses.
VM_READ = 0x1
VM_WRITE = 0x2
VM_EXEC = 0x4
VM_SHARED = 0x8
VM_MAYREAD = 0x10
VM_MAYWRITE = 0x20
VM_MAYEXEC = 0x40
VM_MAYSHARE = 0x80
VM_GROWSDOWN = 0x100
VM_PFNMAP = 0x400
VM_LOCKED = 0x2000
VM_IO = 0x4000
VM_DONTCOPY = 0x20000
VM_DONTEXPAND = 0x40000
VM_ACCOUNT = 0x100000
VM_NORESERVE = 0x200000
VM_WIPEONFORK = 0x2000000
VM_DONTDUMP = 0x4000000
VM_MIXEDMAP = 0x10000000
VM_ACCESS_FLAGS = VM_READ | VM_WRITE | VM_EXEC
VM_SPECIAL = VM_IO | VM_DONTEXPAND | VM_PFNMAP | VM_MIXEDMAP
VM_DATA_DEFAULT_FLAGS = VM_READ | VM_WRITE | VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC
VM_STACK_FLAGS = VM_GROWSDOWN | VM_DATA_DEFAULT_FLAGS | VM_ACCOUNT

PROT_READ, PROT_WRITE, PROT_EXEC = 1, 2, 4
PROTS = {"none": 0, "r": PROT_READ, "w": PROT_WRITE, "rw": PROT_READ | PROT_WRITE,
         "x": PROT_EXEC, "rx": PROT_READ | PROT_EXEC, "wx": PROT_WRITE | PROT_EXEC,
         "rwx": PROT_READ | PROT_WRITE | PROT_EXEC}


class MmError(ValueError):
    """An operation the kernel would refuse (EEXIST, EINVAL, ENOMEM) or that the model does not
    cover; the message says which."""


class NotModelled(MmError):
    """A path of the kernel this model deliberately does not implement."""


def page_align(x: int) -> int:
    return (x + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)


def page_start(x: int) -> int:
    return x & ~(PAGE_SIZE - 1)


@dataclass(eq=False)
class AnonVma:
    """struct anon_vma: only the counters anon_vma_clone()'s reuse test reads."""

    id: int
    parent: AnonVma | None = None
    num_children: int = 0
    num_active_vmas: int = 0


@dataclass(eq=False)
class Vma:
    id: int
    start: int
    end: int
    flags: int
    pgoff: int = 0
    file: str | None = None  # path shown in /proc/pid/maps; None for anonymous memory
    inode: int = 0
    special: str | None = None  # "[vdso]" / "[vvar]" / "[vvar_vclock]": vm_special_mapping name
    anon_vma: AnonVma | None = None
    chain: list[AnonVma] = field(default_factory=list)  # anon_vma_chain, oldest first

    @property
    def pages(self) -> int:
        return (self.end - self.start) >> PAGE_SHIFT

    @property
    def perms(self) -> str:
        f = self.flags
        return ("r" if f & VM_READ else "-") + ("w" if f & VM_WRITE else "-") + \
               ("x" if f & VM_EXEC else "-") + ("s" if f & VM_MAYSHARE else "p")

    @property
    def is_anonymous(self) -> bool:
        return self.file is None and self.special is None


@dataclass(frozen=True)
class TreeOp:
    """One maple tree operation of the history: store [first, last] <- value (None = NULL)."""

    op: str  # "store"
    first: int
    last: int
    value: int | None
    why: str  # the kernel function that made it, e.g. "mmap_region", "__split_vma"


def _new_tree() -> Any:
    from simulator.maple import MapleTree  # the maple engineer's module

    return MapleTree()


class Mm:
    """struct mm_struct with its VMA tree. `tree_factory` builds the maple tree (a
    simulator.maple.MapleTree by default)."""

    def __init__(self, tree_factory: Callable[[], Any] | None = None):
        self.tree = (tree_factory or _new_tree)()
        self._starts: list[int] = []  # sorted VMA starts
        self._by_start: dict[int, Vma] = {}
        self.by_id: dict[int, Vma] = {}
        self.map_count = 0
        self.total_vm = 0
        self.start_brk = 0
        self.brk = 0
        # how /proc/pid/maps names [heap] (kernel fact proc_heap, KernelConfig.proc_heap)
        self.proc_heap_inclusive = False
        self.start_stack = 0
        self.history: list[TreeOp] = []
        self.pte_tables: set[int] = set()  # addr >> PMD_SHIFT of regions with a PTE table
        self.pmd_tables: set[int] = set()
        self.pud_tables: set[int] = set()
        self.pages: set[int] = set()  # addr >> PAGE_SHIFT of every present page (a written
        # or read-faulted page: copy_page_range() copies its pte, exit_mmap() zaps it)
        self._next_id = 1
        self._next_anon = 1

    # ---------------------------------------------------------------- lookup
    def vmas(self) -> Iterator[Vma]:
        for s in self._starts:
            yield self._by_start[s]

    def find(self, addr: int) -> Vma | None:
        """The VMA containing addr, or None."""
        i = bisect.bisect_right(self._starts, addr) - 1
        if i >= 0:
            v = self._by_start[self._starts[i]]
            if v.start <= addr < v.end:
                return v
        return None

    def _neighbours(self, start: int, end: int) -> tuple[Vma | None, Vma | None]:
        i = bisect.bisect_left(self._starts, start)
        prev = self._by_start[self._starts[i - 1]] if i > 0 else None
        j = bisect.bisect_left(self._starts, end)
        nxt = self._by_start[self._starts[j]] if j < len(self._starts) else None
        return prev, nxt

    def overlapping(self, start: int, end: int) -> list[Vma]:
        i = max(bisect.bisect_right(self._starts, start) - 1, 0)
        out = []
        while i < len(self._starts):
            v = self._by_start[self._starts[i]]
            if v.start >= end:
                break
            if v.end > start:
                out.append(v)
            i += 1
        return out

    # ------------------------------------------------------- tree + index
    def _store(self, first: int, last: int, vma: Vma | None, why: str) -> None:
        value = vma.id if vma is not None else None
        self.tree.store_range(first, last, value)
        self.history.append(TreeOp("store", first, last, value, why))

    def _index_add(self, v: Vma) -> None:
        bisect.insort(self._starts, v.start)
        self._by_start[v.start] = v
        self.by_id[v.id] = v

    def _index_del(self, v: Vma) -> None:
        i = bisect.bisect_left(self._starts, v.start)
        del self._starts[i]
        del self._by_start[v.start]
        del self.by_id[v.id]

    def _index_move(self, v: Vma, new_start: int) -> None:
        i = bisect.bisect_left(self._starts, v.start)
        del self._starts[i]
        del self._by_start[v.start]
        v.start = new_start
        bisect.insort(self._starts, v.start)
        self._by_start[v.start] = v

    def new_vma(self, start: int, end: int, flags: int, pgoff: int = 0, file: str | None = None,
                inode: int = 0, special: str | None = None) -> Vma:
        v = Vma(self._next_id, start, end, flags, pgoff, file, inode, special)
        self._next_id += 1
        return v

    def _link(self, v: Vma, why: str) -> None:
        """vma_link()/vma_iter_store() of a new VMA: one store of its range."""
        if self.overlapping(v.start, v.end):
            raise MmError(f"[{v.start:#x}, {v.end:#x}) overlaps an existing VMA (EEXIST)")
        self._store(v.start, v.end - 1, v, why)
        self._index_add(v)
        self.map_count += 1
        self.total_vm += v.pages

    # ------------------------------------------------------- merge rules
    @staticmethod
    def _anon_vma_mergeable(a: AnonVma | None, b: AnonVma | None, vma: Vma | None) -> bool:
        # is_mergeable_anon_vma(): either side without anon_vma, or the same one (and the
        # existing VMA's chain singular, i.e. not cloned from a parent)
        if a is None or b is None:
            return vma is None or len(vma.chain) <= 1
        return a is b

    def _mergeable(self, v: Vma, flags: int, file: tuple[str | None, int],
                   anon: AnonVma | None) -> bool:
        """is_mergeable_vma() + is_mergeable_anon_vma() (mm/vma.c), shared by both sides."""
        if v.special or flags & VM_SPECIAL or v.flags & VM_SPECIAL:
            return False
        if v.flags != flags or (v.file, v.inode) != file:
            return False
        return self._anon_vma_mergeable(v.anon_vma, anon, v)

    def _can_merge_after(self, prev: Vma, flags: int, file: tuple[str | None, int], pgoff: int,
                         anon: AnonVma | None) -> bool:
        """can_vma_merge_after() (mm/vma.c): prev followed by a new range with these properties."""
        return self._mergeable(prev, flags, file, anon) and prev.pgoff + prev.pages == pgoff

    def _can_merge_before(self, nxt: Vma, flags: int, file: tuple[str | None, int], pgoff: int,
                          pages: int, anon: AnonVma | None) -> bool:
        """can_vma_merge_before() (mm/vma.c): a new range with these properties followed by nxt."""
        return self._mergeable(nxt, flags, file, anon) and pgoff + pages == nxt.pgoff

    # ------------------------------------------------------- mm operations
    def mmap(self, start: int, length: int, prot: int, *, shared: bool = False,
             file: str | None = None, inode: int = 0, offset: int = 0,
             extra_flags: int = 0, why: str = "mmap_region") -> Vma:
        """mmap(MAP_FIXED_NOREPLACE): do_mmap() flag computation + mmap_region() (mm/mmap.c).
        A new VMA is one store; merging with an adjacent compatible VMA (vma_merge_new_range)
        is one store of the expanded range instead."""
        if start % PAGE_SIZE or length <= 0:
            raise MmError("mmap: unaligned start or empty length (EINVAL)")
        end = start + page_align(length)
        if end > TASK_SIZE:
            raise MmError("mmap: range above TASK_SIZE (ENOMEM)")
        flags = extra_flags | VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC
        flags |= (VM_READ if prot & PROT_READ else 0) | (VM_WRITE if prot & PROT_WRITE else 0) \
            | (VM_EXEC if prot & PROT_EXEC else 0)
        if shared:
            flags |= VM_SHARED | VM_MAYSHARE
            if file is None:  # shmem_zero_setup(): each mapping gets its own shmem file
                file, inode = "/dev/zero (deleted)", inode or -self._next_id
        if (flags & (VM_NORESERVE | VM_SHARED | VM_WRITE)) == VM_WRITE:
            flags |= VM_ACCOUNT  # accountable_mapping()
        if self.overlapping(start, end):
            raise MmError(f"mmap: [{start:#x}, {end:#x}) already mapped (EEXIST)")
        pgoff = offset >> PAGE_SHIFT if file else start >> PAGE_SHIFT
        pages = (end - start) >> PAGE_SHIFT
        prev, nxt = self._neighbours(start, end)
        merge_prev = prev is not None and prev.end == start and \
            self._can_merge_after(prev, flags, (file, inode), pgoff, None)
        merge_next = nxt is not None and nxt.start == end and \
            self._can_merge_before(nxt, flags, (file, inode), pgoff, pages, None)
        if merge_prev and merge_next and not (prev.anon_vma and nxt.anon_vma
                                              and prev.anon_vma is not nxt.anon_vma):
            assert prev is not None and nxt is not None
            self._index_del(nxt)
            self.map_count -= 1
            prev.end = nxt.end
            if prev.anon_vma is None:
                prev.anon_vma, prev.chain = nxt.anon_vma, nxt.chain
            self._store(prev.start, prev.end - 1, prev, "vma_merge_new_range")
            self.total_vm += pages
            return prev
        if merge_prev:
            assert prev is not None
            prev.end = end
            self._store(prev.start, prev.end - 1, prev, "vma_merge_new_range")
            self.total_vm += pages
            return prev
        if merge_next:
            assert nxt is not None
            self._index_move(nxt, start)
            nxt.pgoff = pgoff
            self._store(nxt.start, nxt.end - 1, nxt, "vma_merge_new_range")
            self.total_vm += pages
            return nxt
        v = self.new_vma(start, end, flags, pgoff, file, inode)
        self._link(v, why)
        return v

    def install_special(self, start: int, length: int, flags: int, name: str) -> Vma:
        """_install_special_mapping() (mm/mmap.c): never merged, one store."""
        v = self.new_vma(start, start + length, flags | VM_DONTEXPAND, 0, None, 0, name)
        self._link(v, "insert_vm_struct")
        return v

    def get_unmapped_area_topdown(self, length: int, mmap_base: int) -> int:
        """vm_unmapped_area() top-down: the highest gap below mmap_base that fits (the
        stack_guard_gap only applies above VM_GROWSDOWN VMAs, which lie above mmap_base)."""
        length = page_align(length)
        high = mmap_base
        for v in reversed([v for v in self.vmas() if v.start < mmap_base]):
            if high - min(v.end, high) >= length:
                return high - length
            high = min(high, v.start)
        if high - PAGE_SIZE * 16 >= length:  # mmap_min_addr (64 KiB) at the bottom
            return high - length
        raise MmError("get_unmapped_area: no room (ENOMEM)")

    def _split(self, v: Vma, addr: int, new_below: bool) -> Vma:
        """__split_vma() (mm/vma.c): the new VMA is a copy of v (sharing its anon_vma through
        anon_vma_clone()); vma_complete() stores the new VMA's range, which shrinks v."""
        if not v.start < addr < v.end:
            raise MmError(f"split of [{v.start:#x}, {v.end:#x}) at {addr:#x}")
        if v.special is not None:  # [vdso], [vvar], [vvar_vclock]
            raise MmError("special mappings do not split in this model (EINVAL)")
        new = self.new_vma(v.start, v.end, v.flags, v.pgoff, v.file, v.inode, v.special)
        new.anon_vma = v.anon_vma
        new.chain = list(v.chain)
        if v.anon_vma is not None:
            v.anon_vma.num_active_vmas += 1
        if new_below:
            new.end = addr
            self._index_move(v, addr)
            v.pgoff += (addr - new.start) >> PAGE_SHIFT
        else:
            new.start = addr
            new.pgoff += (addr - v.start) >> PAGE_SHIFT
            v.end = addr
        self._store(new.start, new.end - 1, new, "__split_vma")
        self._index_add(new)
        self.map_count += 1
        return new

    def munmap(self, start: int, length: int) -> None:
        """do_vmi_munmap() → vms_gather_munmap_vmas(): split the first VMA below start
        (new_below=1) and the last above end (new_below=0), then vma_iter_clear_gfp(): one NULL
        store over [start, end). Page tables of regions left without any VMA are freed."""
        end = start + page_align(length)
        hit = self.overlapping(start, end)
        if not hit:
            return
        first, last = hit[0], hit[-1]
        if first.start < start:
            self._split(first, start, True)  # first now begins at start
        if last.end > end:
            self._split(last, end, False)  # last now ends at end
        self._store(start, end - 1, None, "vma_iter_clear_gfp")
        for v in self.overlapping(start, end):
            self._index_del(v)
            self.map_count -= 1
            self.total_vm -= v.pages
            if v.anon_vma is not None:
                v.anon_vma.num_active_vmas -= 1
        lo, hi = start >> PAGE_SHIFT, end >> PAGE_SHIFT
        if hi - lo < len(self.pages):
            self.pages.difference_update(range(lo, hi))
        else:
            self.pages = {p for p in self.pages if not lo <= p < hi}
        self._free_pgtables(start, end)

    def _modify_flags(self, start: int, end: int, change: Callable[[int], int], why: str) -> None:
        """vma_modify_flags() (mm/vma.c): for each VMA in range, merge if the kernel would,
        else split off the parts outside [start, end) and change the flags in place."""
        hit = self.overlapping(start, end)
        covered = sum(min(v.end, end) - max(v.start, start) for v in hit)
        if covered != end - start:
            raise MmError(f"{why}: [{start:#x}, {end:#x}) is not fully mapped (ENOMEM)")
        for v in hit:
            new_flags = change(v.flags)
            if new_flags == v.flags:
                continue
            lo, hi = max(v.start, start), min(v.end, end)
            prev, nxt = self._neighbours(v.start, v.end)
            if (lo == v.start and prev is not None and prev.end == lo
                    and self._can_merge_after(prev, new_flags, (v.file, v.inode), v.pgoff, v.anon_vma)) or \
               (hi == v.end and nxt is not None and nxt.start == hi
                    and self._can_merge_before(nxt, new_flags, (v.file, v.inode),
                                               v.pgoff + ((lo - v.start) >> PAGE_SHIFT),
                                               (hi - lo) >> PAGE_SHIFT, v.anon_vma)):
                raise NotModelled(f"{why} at {lo:#x} would merge with a neighbour "
                                  "(vma_merge_existing_range is not modelled)")
            target = v
            if v.start < lo:
                self._split(v, lo, True)
            if target.end > hi:
                self._split(target, hi, False)
            target.flags = new_flags

    def mprotect(self, start: int, length: int, prot: int) -> None:
        """mprotect_fixup() (mm/mprotect.c): VM_ACCOUNT is kept when write is removed, and
        added when a private mapping first becomes writable."""
        end = start + page_align(length)
        bits = (VM_READ if prot & PROT_READ else 0) | (VM_WRITE if prot & PROT_WRITE else 0) \
            | (VM_EXEC if prot & PROT_EXEC else 0)

        def change(f: int) -> int:
            nf = (f & ~VM_ACCESS_FLAGS) | bits
            if nf & VM_WRITE and not f & (VM_ACCOUNT | VM_WRITE | VM_SHARED | VM_NORESERVE):
                nf |= VM_ACCOUNT
            return nf

        self._modify_flags(start, end, change, "mprotect")

    def madvise(self, start: int, length: int, advice: str) -> None:
        """madvise_vma_behavior() (mm/madvise.c): dontfork sets VM_DONTCOPY, wipeonfork sets
        VM_WIPEONFORK (private anonymous memory only, else EINVAL)."""
        end = start + page_align(length)
        if advice == "dontfork":
            self._modify_flags(start, end, lambda f: f | VM_DONTCOPY, "madvise")
        elif advice == "wipeonfork":
            for v in self.overlapping(start, end):
                if v.file is not None or v.special is not None or v.flags & VM_SHARED:
                    raise MmError("MADV_WIPEONFORK on a non-anonymous or shared VMA (EINVAL)")
            self._modify_flags(start, end, lambda f: f | VM_WIPEONFORK, "madvise")
        elif advice != "none":
            raise MmError(f"madvise advice {advice!r} is not modelled")

    def do_brk(self, addr: int, length: int, *, exec_bss: bool = False) -> Vma:
        """do_brk_flags() (mm/mmap.c): expand the VMA ending at addr (the brk VMA) when
        compatible, else one store of a new anonymous VMA. vm_brk_flags() for the ELF bss
        passes the VMA just below; brk(2) passes vma_prev_limit(start_brk), i.e. never a VMA
        ending at or below start_brk (so the first brk never expands the bss)."""
        flags = VM_DATA_DEFAULT_FLAGS | VM_ACCOUNT
        end = addr + page_align(length)
        prev, _ = self._neighbours(addr, end)
        if prev is not None and not exec_bss and prev.end <= self.start_brk:
            prev = None
        if prev is not None and prev.end == addr and prev.file is None and prev.special is None \
                and prev.flags == flags and len(prev.chain) <= 1:
            prev.end = end
            self._store(prev.start, prev.end - 1, prev, "do_brk_flags")
            self.total_vm += (end - addr) >> PAGE_SHIFT
            return prev
        v = self.new_vma(addr, end, flags, addr >> PAGE_SHIFT)
        self._link(v, "do_brk_flags")
        return v

    def sys_brk(self, new: int) -> int:
        """brk(2): grow only (glibc's startup never shrinks); returns the new break."""
        newbrk, oldbrk = page_align(new), page_align(self.brk)
        if new < self.start_brk:
            return self.brk
        if newbrk > oldbrk:
            self.do_brk(oldbrk, newbrk - oldbrk)
        elif newbrk < oldbrk:
            raise NotModelled("brk shrink is not modelled")
        self.brk = new
        return new

    def expand_downwards(self, v: Vma, new_start: int) -> None:
        """expand_downwards() (mm/mmap.c): one store of the grown range."""
        new_start = page_start(new_start)
        if new_start >= v.start:
            return
        if self.overlapping(new_start, v.start):
            raise MmError("stack expansion into another VMA")
        grow = (v.start - new_start) >> PAGE_SHIFT
        self.total_vm += grow
        self._index_move(v, new_start)
        v.pgoff -= grow
        self._store(v.start, v.end - 1, v, "expand_downwards")

    # ------------------------------------------------------- faults
    def _map_page(self, addr: int) -> None:
        self.pages.add(addr >> PAGE_SHIFT)
        self.pte_tables.add(addr >> PMD_SHIFT)
        self.pmd_tables.add(addr >> PUD_SHIFT)
        self.pud_tables.add(addr >> PGDIR_SHIFT)

    def read_fault(self, addr: int) -> None:
        """A read (or fault-around) mapping a page: page tables only."""
        if self.find(addr) is None:
            raise MmError(f"read fault at unmapped {addr:#x}")
        self._map_page(addr)

    def write_fault(self, addr: int) -> None:
        """A write fault: private mappings get an anon_vma first (__anon_vma_prepare() in
        mm/rmap.c, reusing a compatible neighbour's via find_mergeable_anon_vma())."""
        v = self.find(addr)
        if v is None:
            raise MmError(f"write fault at unmapped {addr:#x}")
        if not v.flags & VM_WRITE:
            raise MmError(f"write fault at {addr:#x} in a VMA without write permission")
        if not v.flags & VM_SHARED and v.anon_vma is None:
            self.anon_vma_prepare(v)
        self._map_page(addr)

    def anon_vma_prepare(self, v: Vma) -> None:
        reuse = self._find_mergeable_anon_vma(v)
        if reuse is None:
            reuse = AnonVma(self._next_anon)
            self._next_anon += 1
            reuse.parent = reuse
            reuse.num_children = 1  # self-parent link of a new root
        v.anon_vma = reuse
        v.chain = [reuse]
        reuse.num_active_vmas += 1

    def _find_mergeable_anon_vma(self, v: Vma) -> AnonVma | None:
        prev, nxt = self._neighbours(v.start, v.end)

        def compatible(a: Vma, b: Vma) -> bool:
            return (a.end == b.start and (a.file, a.inode) == (b.file, b.inode)
                    and a.special is None
                    and b.special is None
                    and not ((a.flags ^ b.flags) & ~VM_ACCESS_FLAGS)
                    and b.pgoff == a.pgoff + ((b.start - a.start) >> PAGE_SHIFT))

        if nxt is not None and compatible(v, nxt) and nxt.anon_vma and len(nxt.chain) == 1:
            return nxt.anon_vma
        if prev is not None and compatible(prev, v) and prev.anon_vma and len(prev.chain) == 1:
            return prev.anon_vma
        return None

    def _free_pgtables(self, start: int, end: int) -> None:
        """free_pgtables() after an unmap, by presence: a table goes when no VMA is left in
        the region it maps."""
        for shift, tables in ((PMD_SHIFT, self.pte_tables), (PUD_SHIFT, self.pmd_tables),
                              (PGDIR_SHIFT, self.pud_tables)):
            for r in range(start >> shift, ((end - 1) >> shift) + 1):
                if r in tables and not self.overlapping(r << shift, (r + 1) << shift):
                    tables.discard(r)

    def history_ops(self) -> list[tuple]:
        """The tree history as a simulator.maple.ops operation list (for the oracle)."""
        return [("tree", "rcu")] + [("store", o.first, o.last, o.value) for o in self.history]

    # ------------------------------------------------------- views
    def name_of(self, v: Vma) -> str:
        """The name column of /proc/pid/maps (fs/proc/task_mmu.c show_map_vma())."""
        if v.file is not None:
            return v.file
        if v.special is not None:
            return v.special
        if self.proc_heap_inclusive:  # 6.1: start <= brk && end >= start_brk
            if v.start <= self.brk and v.end >= self.start_brk:
                return "[heap]"
        elif v.start < self.brk and v.end > self.start_brk:  # 6.12: vma_is_initial_heap()
            return "[heap]"
        if v.start <= self.start_stack <= v.end:
            return "[stack]"
        return ""

    def maps(self) -> list[dict]:
        """The VMAs as /proc/pid/maps shows them (without [vsyscall], which is not a VMA)."""
        return [{"start": v.start, "end": v.end, "perms": v.perms,
                 "offset": (v.pgoff << PAGE_SHIFT) if v.file is not None else 0,
                 "file": v.file is not None, "name": self.name_of(v)} for v in self.vmas()]

    def check(self) -> None:
        """Internal consistency: sorted, non-overlapping, map_count, and tree == VMA index."""
        prev_end = 0
        n = 0
        for v in self.vmas():
            assert v.start < v.end and v.start >= prev_end, f"overlap at {v.start:#x}"
            prev_end = v.end
            n += 1
            assert self.tree.load(v.start) == v.id and self.tree.load(v.end - 1) == v.id
        assert n == self.map_count, (n, self.map_count)
