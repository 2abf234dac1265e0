"""A captured /proc/PID/maps (and optionally /proc/PID/smaps) as a list scenario
(simulator/scenario.py, `vmas`): what `forkdiff scenario from-maps` prints.

What is reproduced, VMA for VMA, in address order:
- sizes, protections and gaps: every VMA keeps its size and its distance to the one before;
  a gap larger than GAP_KEEP (1 GiB) becomes GAP_KEEP plus the gap modulo GAP_KEEP (each
  address keeps its place modulo 1 GiB, so the PTE and PMD tables the VMAs share are the same)
  and the layout starts at scenario.DEFAULT_BASE plus the first address modulo 1 GiB;
- file mappings: one guest file per source file (scenario LIST_FILE_FMT), mapped at the same
  offsets, private or shared as in the source; adjacent mappings of one file stay separate
  VMAs because their prot or offsets differ, as in the source;
- private and shared anonymous memory, PROT_NONE guards, [heap], [stack] and named anonymous
  regions ([anon:...]) as plain anonymous mappings of the same size and prot;
- the pages written: smaps' `Anonymous:` of a private VMA, as that many pages from its start
  (a VMA not writable now is mapped writable, written, then mprotect()ed: option `w`).
  Without smaps nothing is written.

The kernel merges two adjacent VMAs of the same backing, flags and contiguous offsets. The
source process had them apart for a reason maps does not show (the usual one: a library's
RELRO segment, mapped writable by ld.so and then made read-only, keeps VM_ACCOUNT and so
differs from the read-only segment before it). Such a VMA is built the same way (option `w`:
mapped writable, then mprotect()ed, VM_ACCOUNT kept) or, where that does not separate it
(writable or shared memory), with MAP_NORESERVE (option `nr`: VM_NORESERVE, no VM_ACCOUNT),
which changes no VMA fork copies and no allocation dup_mmap() makes; every such choice is
counted in the notes.

Not reproduced, and reported (notes): the special mappings ([vdso], [vvar], [vvar_vclock],
[vsyscall], [uprobes]) of which the guest program has its own, the source program's own
executable (the file of the first mapping; the guest program is its own executable), and
mappings of devices or anonymous inodes (VM_IO/VM_PFNMAP memory the guest cannot make). Their
addresses stay gaps. Pages read but not written (smaps Rss beyond Anonymous) are not faulted:
fork() copies no page table entries of a VMA without an anon_vma, and the slab objects it
allocates do not depend on them.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field, replace

from .scenario import (
    DEFAULT_BASE,
    PAGE_SIZE,
    LayoutVma,
    Scenario,
    ScenarioError,
    _would_merge,
)

GAP_KEEP = 1 << 30  # gaps up to 1 GiB are kept as they are
LAYOUT_TOP = 0x7F00_0000_0000  # the layout must end below this (the guest's own mmap area)
NORESERVE_ABOVE = 256 << 20  # writable private VMAs larger than this are mapped MAP_NORESERVE
SPECIAL = ("[vdso]", "[vvar]", "[vvar_vclock]", "[vsyscall]", "[uprobes]")

_LINE = re.compile(r"^([0-9a-f]+)-([0-9a-f]+)\s+([r-][w-][x-][ps])\s+([0-9a-f]+)\s+"
                   r"([0-9a-f]+:[0-9a-f]+)\s+(\d+)\s*(.*)$")
_PROT = {"---": "none", "r--": "r", "-w-": "w", "rw-": "rw", "--x": "x", "r-x": "rx",
         "-wx": "wx", "rwx": "rwx"}


@dataclass(frozen=True)
class MapsLine:
    start: int
    end: int
    perms: str
    offset: int
    dev: str
    inode: int
    name: str

    @property
    def pages(self) -> int:
        return (self.end - self.start) // PAGE_SIZE


@dataclass
class Conversion:
    scenario: Scenario
    notes: list[str] = field(default_factory=list)
    skipped: list[MapsLine] = field(default_factory=list)
    source_vmas: int = 0


def parse_maps(text: str, source: str = "maps") -> list[MapsLine]:
    """The lines of a /proc/PID/maps (or the range lines of smaps), in order."""
    out = []
    for no, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        m = _LINE.match(line)
        if not m:
            if ":" in line.split()[0] and not re.match(r"^[0-9a-f]+-", line):
                continue  # an smaps field line ("Rss:  4 kB")
            raise ScenarioError(f"{source}: line {no} is not a /proc/PID/maps line: {line[:120]!r}")
        start, end = int(m.group(1), 16), int(m.group(2), 16)
        if start >= end or start % PAGE_SIZE or end % PAGE_SIZE:
            raise ScenarioError(f"{source}: line {no}: bad range {m.group(1)}-{m.group(2)}")
        out.append(MapsLine(start, end, m.group(3), int(m.group(4), 16), m.group(5),
                            int(m.group(6)), m.group(7).strip()))
    if not out:
        raise ScenarioError(f"{source}: no /proc/PID/maps lines")
    for a, b in zip(out, out[1:], strict=False):
        if b.start < a.end:
            raise ScenarioError(f"{source}: {b.start:x}-{b.end:x} is below or overlaps "
                                f"{a.start:x}-{a.end:x}: lines must ascend")
    return out


def parse_smaps(text: str, source: str = "smaps") -> dict[tuple[int, int], dict[str, int]]:
    """/proc/PID/smaps: per VMA range, its kB fields (Rss, Anonymous, ...)."""
    out: dict[tuple[int, int], dict[str, int]] = {}
    cur: dict[str, int] | None = None
    for line in text.splitlines():
        m = _LINE.match(line)
        if m:
            cur = out.setdefault((int(m.group(1), 16), int(m.group(2), 16)), {})
            continue
        f = re.match(r"^(\w+):\s+(\d+) kB$", line.strip())
        if f and cur is not None:
            cur[f.group(1)] = int(f.group(2))
    if not out:
        raise ScenarioError(f"{source}: no VMA in this smaps file")
    return out


def _why_skipped(line: MapsLine, exe: str | None) -> str | None:
    name = line.name
    if name in SPECIAL:
        return "special mapping (the guest program has its own)"
    if exe is not None and name == exe:
        return "the source program's own executable"
    if name.startswith("anon_inode:") or name.startswith("/dev/") and not (
            name.startswith("/dev/zero") or name.startswith("/dev/shm/")):
        return "device or anonymous-inode mapping (not reproducible by mmap of a file)"
    if name.startswith("[") and not (name in ("[heap]", "[stack]") or name.startswith("[anon:")
                                     or name.startswith("[stack:") or name.startswith("[anon_shmem:")):
        return "special mapping"
    return None


def _kind(line: MapsLine) -> tuple[str, str | None]:
    """(kind, file name or None)."""
    shared = line.perms[3] == "s"
    name = line.name
    if name.startswith("/dev/zero") or name.startswith("[anon_shmem:"):
        return ("shared-anon" if shared else "anon"), None
    if name.startswith("/"):
        return ("shared-file" if shared else "file"), name
    return ("shared-anon" if shared else "anon"), None


def convert(maps_text: str, smaps_text: str | None = None, *, name: str = "replayed",
            description: str = "", exe: str | None = "", source: str = "maps",
            base: int | None = None) -> Conversion:
    """The scenario that rebuilds the captured layout. exe: the source program's executable,
    whose mappings are left out ("" = the file of the first line, None = keep every file)."""
    lines = parse_maps(maps_text, source)
    smaps = parse_smaps(smaps_text, "smaps") if smaps_text else None
    if exe == "":
        exe = lines[0].name if lines[0].name.startswith("/") else None
    conv = Conversion(Scenario(name=name, groups=()), source_vmas=len(lines))
    notes = conv.notes
    files: dict[str, int] = {}
    vmas: list[LayoutVma] = []
    skipped_why: Counter[str] = Counter()
    fixes: Counter[str] = Counter()
    compressed = 0
    touched_total = 0
    named: Counter[str] = Counter()
    prev_src_end: int | None = None
    prev_new_end = 0
    first_start = None
    missing_smaps = 0
    for line in lines:
        why = _why_skipped(line, exe)
        if why:
            conv.skipped.append(line)
            skipped_why[f"{line.name or 'anonymous'}: {why}"] += 1
            continue
        if first_start is None:
            first_start = line.start
            b = base if base is not None else DEFAULT_BASE + line.start % GAP_KEEP
            new_start = b
            conv.scenario = replace(conv.scenario, base=b)
        else:
            assert prev_src_end is not None
            gap = line.start - prev_src_end
            if gap > GAP_KEEP:
                gap = GAP_KEEP + gap % GAP_KEEP
                compressed += 1
            new_start = prev_new_end + gap
        kind, fname = _kind(line)
        if line.name.startswith("[") and kind in ("anon", "shared-anon"):
            named[line.name.split(":")[0].rstrip("]") + "]"] += 1
        prot = _PROT[line.perms[:3]]
        touched = 0
        if smaps is not None:
            fields = smaps.get((line.start, line.end))
            if fields is None:
                missing_smaps += 1
            elif not kind.startswith("shared"):
                touched = min(line.pages, fields.get("Anonymous", 0) // (PAGE_SIZE // 1024))
        touched_total += touched
        fidx = None
        if fname is not None:
            fidx = files.setdefault(fname, len(files))
        v = LayoutVma(new_start, new_start + (line.end - line.start), prot, kind, "none",
                      "all" if touched == line.pages else "none" if touched == 0 else str(touched),
                      fidx, line.offset if fidx is not None else 0)
        writable = "w" in prot
        private = not kind.startswith("shared")
        big = private and writable and line.end - line.start > NORESERVE_ABOVE
        if touched and not writable:
            cands = [(True, big), (True, True)]
        elif private and not writable:
            cands = [(False, False), (True, False), (False, True), (True, True)]
        else:
            cands = [(False, big), (False, True)]
        prev = vmas[-1] if vmas else None
        chosen = None
        for w, nr in cands:
            c = replace(v, mapped_writable=w, noreserve=nr)
            if prev is None or _would_merge(prev, c) is None:
                chosen = c
                break
        if chosen is None:
            raise ScenarioError(f"{source}: {line.start:x}-{line.end:x} cannot be kept apart from the "
                                "VMA before it")
        if (chosen.mapped_writable, chosen.noreserve) != cands[0]:
            fixes["w (mapped writable, then mprotect: VM_ACCOUNT)" if chosen.mapped_writable and not cands[0][0]
                  else "nr (MAP_NORESERVE)"] += 1
        if big:
            fixes[f"nr on writable private VMAs above {NORESERVE_ABOVE >> 20} MiB (no overcommit charge)"] += 1
        vmas.append(chosen)
        prev_src_end, prev_new_end = line.end, chosen.end
    if not vmas:
        raise ScenarioError(f"{source}: no mapping left to reproduce")
    if vmas[-1].end > LAYOUT_TOP:
        raise ScenarioError(f"{source}: the replayed layout would end at {vmas[-1].end:#x}, above "
                            f"{LAYOUT_TOP:#x} (the guest's own mappings)")
    sc = replace(conv.scenario, vmas=tuple(vmas), files=tuple(files), description=description)
    conv.scenario = sc
    notes.append(f"{len(vmas)} of {len(lines)} VMAs reproduced, {len(files)} files, "
                 f"{touched_total} pages written" + ("" if smaps is not None else " (no smaps: none)"))
    for what, n in sorted(skipped_why.items()):
        notes.append(f"not reproduced: {n} x {what}")
    for what, n in sorted(named.items()):
        notes.append(f"reproduced as plain anonymous memory: {n} x {what}")
    for what, n in sorted(fixes.items()):
        notes.append(f"kept apart from a neighbour the kernel would merge it with: {n} x {what}")
    if compressed:
        notes.append(f"{compressed} gaps above {GAP_KEEP >> 30} GiB shortened (address kept modulo 1 GiB)")
    if missing_smaps:
        notes.append(f"{missing_smaps} VMAs missing from smaps (written pages taken as none)")
    return conv
