"""The image of a static x86-64 binary (gcc -static, glibc) right after exec and libc startup,
replayed as the kernel builds it, in the kernel's order, on an mm.Mm:

1. fs/exec.c __bprm_mm_init(): a one-page stack VMA at STACK_TOP_MAX; get_arg_page() grows it
   down (expand_downwards) one page at a time while the filename, environment and arguments
   are copied; setup_arg_pages(): no shift for a 64-bit task (stack_top == STACK_TOP_MAX with
   norandmaps), then expand_stack_locked() by 128 KiB (stack_expand).
2. fs/binfmt_elf.c load_elf_binary()/elf_load(): one private file mapping per PT_LOAD
   (ET_EXEC: fixed addresses), the bss beyond the last file page by vm_brk_flags(); then
   start_brk = brk = PAGE_ALIGN(end of bss) (no brk gap without randomization).
3. arch/x86/entry/vdso/vma.c map_vdso(): top-down below mmap_base, [vdso] text stored first,
   then [vvar] (4 pages: vvar, pvclock, hvclock, timens) just below it. 7.x
   (ExecParams.vclock): get_unmapped_area() for the text + __VDSO_PAGES (6); [vdso] at
   addr + 6 pages, then vdso_install_vvar_mapping()'s [vvar] (VDSO_NR_PAGES = 4, VM_MIXEDMAP)
   at addr, then [vvar_vclock] (VDSO_NR_VCLOCK_PAGES = 2: pvclock, hvclock; VM_PFNMAP) at
   addr + 4 pages (arch/x86/include/asm/vdso/vsyscall.h, lib/vdso/datastore.c).
4. glibc 2.36 static startup (as strace shows it): brk() for the static TLS block
   (_dl_early_allocate), brk() for malloc's first arena top (_dl_non_dynamic_init's search
   path setup mallocs: request + 128 KiB top_pad, page aligned end), mprotect(PROT_READ) of
   PT_GNU_RELRO (_dl_protect_relro), which splits the data VMA.
Pages written during exec and startup (arguments, .data/.bss tail via padzero, TLS, heap)
give the stack, the data VMA (hence the RELRO part split from it), the bss and the heap an
anon_vma; text, rodata and the vDSO are read-faulted (page tables only).

Deliberately not modelled: PIE / static-pie (ET_DYN), PT_INTERP, executable stacks, brk
randomization (the guest boots with norandmaps), a stack larger than 128 KiB + arguments.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

from .mm import (
    PAGE_SIZE,
    PROT_EXEC,
    PROT_READ,
    PROT_WRITE,
    TASK_SIZE,
    VM_ACCOUNT,
    VM_DONTDUMP,
    VM_EXEC,
    VM_IO,
    VM_MAYEXEC,
    VM_MAYREAD,
    VM_MAYWRITE,
    VM_MIXEDMAP,
    VM_PFNMAP,
    VM_READ,
    VM_STACK_FLAGS,
    Mm,
    MmError,
    page_align,
    page_start,
)

PT_LOAD, PT_TLS, PT_GNU_RELRO = 1, 7, 0x6474E552
ET_EXEC = 2
STACK_EXPAND = 131072  # setup_arg_pages(): stack_expand
MMAP_BASE = TASK_SIZE - (128 << 20)  # mmap_base(): gap clamped to 128 MiB, no random offset
VVAR_PAGES = 4
VDSO_PAGES = 2  # vdso_image_64.size of a 6.12 x86-64 build
VCLOCK_PAGES = 2  # 7.x VDSO_NR_VCLOCK_PAGES; its [vvar] stays VDSO_NR_PAGES = 4
MALLOC_FIRST_SBRK = 0x21000  # ALIGN_UP(small request + top_pad 0x20000 + MINSIZE, 4096)
TLS_BRK = 0xD00  # glibc 2.36 static TLS block + TCB for a binary with a small PT_TLS


@dataclass(frozen=True)
class Segment:
    vaddr: int
    offset: int
    filesz: int
    memsz: int
    prot: int


@dataclass(frozen=True)
class ElfInfo:
    path: str
    loads: tuple[Segment, ...]
    relro: tuple[int, int] | None  # (vaddr, memsz)
    tls_memsz: int
    # addresses of the guest program's big static buffers (BUFFER_SYMBOLS, from .symtab):
    # which bss pages it writes before fork() decides the parent's page tables there
    buffers: tuple[tuple[str, int], ...] = ()

    def buffer(self, name: str) -> int | None:
        return dict(self.buffers).get(name)


# faultsweep's bss buffers (guest/faultsweep.c, guest/common.c): the /proc/self/maps text
# before the sweep (`before`) and after a failed fork (`now`, read once before the probe too),
# and the held JSON output (`obuf`). Each is 16 MiB or 64 KiB: the 2 MiB regions their first
# pages fall in get PTE tables, which copy_page_range() copies for the bss VMA.
BUFFER_SYMBOLS = ("before", "now", "obuf")
# The layout builder's static group table (guest/layout.c groups_store, 131,072 entries): a
# group scenario's groups are written into its first entries, so its first page is written
# before fork() too and the 2 MiB region it falls in gets a PTE table.
LAYOUT_SYMBOLS = ("groups_store",)
SHT_SYMTAB = 2


# A gcc 12 / glibc 2.36 static binary (measured: `gcc -O2 -static` on Debian 12, the host's
# readelf -lW); used when no guest binary is given. Only addresses depend on it.
DEFAULT_ELF = ElfInfo(
    path="/forkdiff/prog",
    loads=(Segment(0x400000, 0x0, 0x518, 0x518, PROT_READ),
           Segment(0x401000, 0x1000, 0x77B81, 0x77B81, PROT_READ | PROT_EXEC),
           Segment(0x479000, 0x79000, 0x26F66, 0x26F66, PROT_READ),
           Segment(0x4A06D8, 0xA06D8, 0x5B98, 0xB3C8, PROT_READ | PROT_WRITE)),
    relro=(0x4A06D8, 0x3928),
    tls_memsz=0x60,
)


def read_elf(path: str | Path, guest_path: str | None = None) -> ElfInfo:
    """Program headers of a 64-bit little-endian ELF executable (ET_EXEC only)."""
    data = Path(path).read_bytes()
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise MmError(f"{path}: not a 64-bit little-endian ELF file")
    e_type, = struct.unpack_from("<H", data, 16)
    if e_type != ET_EXEC:
        raise MmError(f"{path}: ELF type {e_type} is not ET_EXEC (static-pie is not modelled)")
    e_phoff, = struct.unpack_from("<Q", data, 32)
    e_phentsize, e_phnum = struct.unpack_from("<HH", data, 54)
    loads, relro, tls = [], None, 0
    for i in range(e_phnum):
        p_type, p_flags, p_offset, p_vaddr, _pa, p_filesz, p_memsz, _al = struct.unpack_from(
            "<IIQQQQQQ", data, e_phoff + i * e_phentsize)
        if p_type == PT_LOAD:
            prot = (PROT_READ if p_flags & 4 else 0) | (PROT_WRITE if p_flags & 2 else 0) | \
                (PROT_EXEC if p_flags & 1 else 0)
            loads.append(Segment(p_vaddr, p_offset, p_filesz, p_memsz, prot))
        elif p_type == PT_GNU_RELRO:
            relro = (p_vaddr, p_memsz)
        elif p_type == PT_TLS:
            tls = p_memsz
    return ElfInfo(guest_path or str(path), tuple(loads), relro, tls, _symbols(data, BUFFER_SYMBOLS + LAYOUT_SYMBOLS))


def _symbols(data: bytes, names: tuple[str, ...]) -> tuple[tuple[str, int], ...]:
    """(name, st_value) of the named symbols in .symtab (an unstripped static binary); ()
    when there is no symbol table."""
    e_shoff, = struct.unpack_from("<Q", data, 40)
    e_shentsize, e_shnum = struct.unpack_from("<HH", data, 58)
    if not e_shoff or not e_shnum:
        return ()
    sections = [struct.unpack_from("<IIQQQQIIQQ", data, e_shoff + i * e_shentsize)
                for i in range(e_shnum)]
    found: dict[str, int] = {}
    for _name, sh_type, _fl, _addr, off, size, link, _info, _al, entsize in sections:
        if sh_type != SHT_SYMTAB or not entsize:
            continue
        str_off = sections[link][4]
        for i in range(size // entsize):
            st_name, _st_info, _other, _shndx, st_value, _sz = struct.unpack_from(
                "<IBBHQQ", data, off + i * entsize)
            end = data.index(b"\0", str_off + st_name)
            name = data[str_off + st_name:end].decode(errors="replace")
            if name in names and name not in found:
                found[name] = st_value
    return tuple(sorted(found.items()))


@dataclass(frozen=True)
class ExecParams:
    """What besides the binary decides the image: the bytes exec copies onto the stack
    (filename + argv + envp strings), the vDSO size and layout (vclock: 7.x's separate
    [vvar_vclock]), and glibc's two startup brk calls."""

    arg_bytes: int = 600
    vdso_pages: int = VDSO_PAGES
    tls_brk: int = TLS_BRK
    malloc_brk: int = MALLOC_FIRST_SBRK
    inode: int = 0
    vclock: bool = False


def build_exec_image(elf: ElfInfo = DEFAULT_ELF, params: ExecParams = ExecParams(),
                     tree_factory=None) -> Mm:
    """A new mm holding the process image after exec and glibc's static startup."""
    mm = Mm(tree_factory)
    # 1. __bprm_mm_init + copy_strings: the stack VMA, grown a page at a time.
    stack = mm.new_vma(TASK_SIZE - PAGE_SIZE, TASK_SIZE, VM_STACK_FLAGS,
                       (TASK_SIZE - PAGE_SIZE) >> 12)
    mm._link(stack, "insert_vm_struct")
    p = TASK_SIZE - 8 - params.arg_bytes  # bprm->p after the strings
    page = TASK_SIZE - PAGE_SIZE
    while page > page_start(p):
        page -= PAGE_SIZE
        mm.expand_downwards(stack, page)
    for a in range(page_start(p), TASK_SIZE, PAGE_SIZE):
        mm.write_fault(a)  # get_arg_page(FOLL_WRITE)
    mm.expand_downwards(stack, stack.start - STACK_EXPAND)  # setup_arg_pages
    mm.start_stack = page_start(p) - 8  # below the strings: argc/argv/envp/auxv (bprm->p)
    # 2. PT_LOAD segments, then the bss.
    elf_brk = 0
    data_vma = None
    for seg in elf.loads:
        start = page_start(seg.vaddr)
        if seg.filesz:
            end = page_align(seg.vaddr + seg.filesz)
            v = mm.mmap(start, end - start, seg.prot, file=elf.path, inode=params.inode,
                        offset=seg.offset - (seg.vaddr - start), why="elf_map")
            mm.read_fault(start)
            if seg.memsz > seg.filesz and seg.prot & PROT_WRITE:
                mm.write_fault(seg.vaddr + seg.filesz)  # padzero()
                data_vma = v
        zs, ze = page_align(seg.vaddr + seg.filesz), page_align(seg.vaddr + seg.memsz)
        if ze > zs:
            bss = mm.do_brk(zs, ze - zs, exec_bss=True)
            if seg.prot & PROT_EXEC:
                bss.flags |= VM_EXEC
        elf_brk = max(elf_brk, seg.vaddr + seg.memsz)
    mm.start_brk = mm.brk = page_align(elf_brk)
    # 3. vDSO: text first, then vvar below it (map_vdso()).
    text = map_vdso(mm, params)
    mm.read_fault(text)  # glibc parses the vDSO's ELF header (setup_vdso_pointers)
    # 4. glibc static startup.
    base = mm.brk
    mm.sys_brk(base + params.tls_brk)
    mm.write_fault(base)
    mm.sys_brk(base + params.tls_brk + params.malloc_brk)
    mm.sys_brk(page_align(mm.brk))
    mm.write_fault(page_align(base + params.tls_brk) - PAGE_SIZE)
    mm.write_fault(page_align(base + params.tls_brk))  # malloc writes the chunk header
    if elf.relro is not None:
        lo = page_start(elf.relro[0])
        hi = page_start(elf.relro[0] + elf.relro[1])
        if hi > lo:
            mm.mprotect(lo, hi - lo, PROT_READ)
    for v in mm.vmas():
        if v.file is None and v.special is None and v.anon_vma is None and v is not data_vma \
                and v.flags & VM_ACCOUNT and v.end <= mm.start_brk:
            mm.write_fault(v.start)  # the bss: libc's static data lives there
    return mm


def map_vdso(mm: Mm, params: ExecParams) -> int:
    """arch/x86/entry/vdso/vma.c map_vdso(); returns the text's address. 6.12: [vdso], then
    [vvar] (VM_PFNMAP) below it; 7.x (params.vclock): [vdso], [vvar] (VM_MIXEDMAP) at the
    bottom, [vvar_vclock] (VM_PFNMAP) between them."""
    data = VVAR_PAGES + (VCLOCK_PAGES if params.vclock else 0)
    addr = mm.get_unmapped_area_topdown((params.vdso_pages + data) * PAGE_SIZE, MMAP_BASE)
    text = addr + data * PAGE_SIZE
    mm.install_special(text, params.vdso_pages * PAGE_SIZE,
                       VM_READ | VM_EXEC | VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC, "[vdso]")
    special = VM_READ | VM_MAYREAD | VM_IO | VM_DONTDUMP
    if not params.vclock:
        mm.install_special(addr, VVAR_PAGES * PAGE_SIZE, special | VM_PFNMAP, "[vvar]")
        return text
    mm.install_special(addr, VVAR_PAGES * PAGE_SIZE, special | VM_MIXEDMAP, "[vvar]")
    mm.install_special(addr + VVAR_PAGES * PAGE_SIZE, VCLOCK_PAGES * PAGE_SIZE,
                       special | VM_PFNMAP, "[vvar_vclock]")
    return text
