"""Scenario files: the VMA layout a guest program builds and the simulator replays.

A scenario is YAML or JSON, in one of two forms. Groups of identical VMAs:

    name: dontfork-small           # required, [A-Za-z0-9_.-]+
    description: free text         # optional
    base: 0x100000000              # address of the first layout VMA (page aligned)
    gap_pages: 1                   # unmapped pages after every layout VMA (>= 0)
    repeat: 1                      # the groups, in order, this many times (>= 1)
    groups:                        # created in this order, at ascending addresses (no limit)
      - count: 20                  # VMAs in this group (>= 1)
        pages: 1                   # size of each VMA in 4 KiB pages (>= 1)
        prot: rw                   # none | r | w | rw | x | rx | wx | rwx
        kind: anon                 # anon | shared-anon | file | shared-file
        advice: none               # none | dontfork | wipeonfork (wipeonfork: private anon only)
        touch: all                 # none | first | all: pages written (needs 'w' in prot)

Layout VMA i of the whole list starts at base + sum(previous sizes + gap); with repeat N the
list is the groups' VMAs N times over (e.g. two 1-VMA groups of different prot, repeated, give
alternating neighbours that gap_pages 0 cannot merge). With gap_pages 0,
neighbours must differ in prot, kind or advice, or the kernel would merge them; the guest
builder checks its own /proc/self/maps and fails on any merge. File-backed VMAs of groups map
offset 0 of one file created by the guest builder (LAYOUT_FILE).

Or a list of VMAs, one string each (what `forkdiff scenario from-maps` writes from a captured
/proc/PID/maps), at addresses relative to base:

    name: py-pandas
    base: 0x100000000
    files: [/usr/lib/x86_64-linux-gnu/libc.so.6, ...]   # optional: what file i stands for
    vmas:
      - 0x0 38 r file:0@0x0               # START PAGES PROT KIND [options]
      - 0x26000 342 rx file:0@0x26000
      - 0x17c000 83 r file:0@0x17c000
      - 0x1cf000 4 r file:0@0x1cf000 w t=4  # mapped rw, 4 pages written, then mprotect(r)
      - 0x1d3000 2 rw file:0@0x1d3000 t=2
      - 0x1d5000 13 rw anon t=3 a=dontfork
      - 0x1e3000 1 none anon nr             # MAP_NORESERVE

KIND is anon, shared-anon, file:I@OFFSET or shared-file:I@OFFSET: file I of the layout
(the guest creates LIST_FILE_FMT % I, as long as its mappings need) at byte OFFSET (page
aligned). Options: t=N writes the first N pages; a=dontfork|wipeonfork is the madvise();
`w` maps the VMA writable, writes, then mprotect()s it to PROT (a private mapping keeps
VM_ACCOUNT, as a library's RELRO segment does, and becomes a VMA apart from a read-only
neighbour of the same file at the next offset); `nr` maps it with MAP_NORESERVE (no
VM_ACCOUNT, VM_NORESERVE set: apart from a neighbour that is otherwise the same). VMAs
ascend and never overlap; two adjacent ones that the kernel would merge (same backing, flags
and advice, contiguous offsets) are refused. Per VMA the guest and the simulator do:
mmap(MAP_FIXED_NOREPLACE) -> madvise(advice) -> writes -> mprotect(PROT) (with `w`).

The guest builder receives `guest_args()` on its command line: `--base 0x... --gap N
[--repeat N] COUNTxPAGES:PROT:KIND:ADVICE:TOUCH ...` for groups; for a list, `--layout-list
PATH` names the file `guest_list()` makes (pushed to the guest over SFTP: LIST_PATH).
"""

from __future__ import annotations

import base64
import json
import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import yaml

PAGE_SIZE = 4096
PROTS = ("none", "r", "w", "rw", "x", "rx", "wx", "rwx")  # the order of prot_names in guest/layout.c
KINDS = ("anon", "shared-anon", "file", "shared-file")
ADVICES = ("none", "dontfork", "wipeonfork")
TOUCHES = ("none", "first", "all")
DEFAULT_BASE = 0x1_0000_0000
USER_TOP = 0x7FFF_FFFF_F000  # TASK_SIZE on x86-64 with 4-level paging
LAYOUT_FILE = "/tmp/forkdiff-layout.dat"  # guest/layout.h LAYOUT_FILE: the groups' file
LIST_FILE_FMT = "/tmp/forkdiff-layout-%d.dat"  # guest/layout.h LIST_FILE_FMT: file I of a list
LIST_PATH = "/tmp/forkdiff-layout.list"  # where the orchestrator puts guest_list() in the guest
MAX_LIST_FILES = 65536  # guest/layout.h MAX_LIST_FILES
# VMA option flags, as guest_list() writes them (guest/layout.h VF_*)
VF_NORESERVE = 1
VF_MAPPED_WRITABLE = 2


class ScenarioError(ValueError):
    """A scenario that cannot be used; the message names the file and the field."""


@dataclass(frozen=True)
class Group:
    count: int
    pages: int = 1
    prot: str = "rw"
    kind: str = "anon"
    advice: str = "none"
    touch: str = "none"

    def spec(self) -> str:
        return f"{self.count}x{self.pages}:{self.prot}:{self.kind}:{self.advice}:{self.touch}"


@dataclass(frozen=True)
class LayoutVma:
    """One VMA the guest builder creates: [start, end) and how."""

    start: int
    end: int
    prot: str
    kind: str
    advice: str
    touch: str  # none | first | all, or the number of pages written (a list's t=N)
    file: int | None = None  # a list's file index (None: the groups' LAYOUT_FILE)
    offset: int = 0  # byte offset into the file
    noreserve: bool = False  # MAP_NORESERVE
    mapped_writable: bool = False  # mmap()ed writable, mprotect()ed to prot after the writes

    @property
    def pages(self) -> int:
        return (self.end - self.start) // PAGE_SIZE

    @property
    def touched(self) -> int:
        """How many pages, from the first, are written."""
        if self.touch == "all":
            return self.pages
        if self.touch == "first":
            return 1
        if self.touch == "none":
            return 0
        return int(self.touch)

    @property
    def map_prot(self) -> str:
        """The prot the VMA is mmap()ed with."""
        if not self.mapped_writable or "w" in self.prot:
            return self.prot
        return {"none": "rw", "r": "rw", "x": "rwx", "rx": "rwx"}[self.prot]

    @property
    def path(self) -> str | None:
        """The guest file it maps (None: anonymous)."""
        if self.kind not in ("file", "shared-file"):
            return None
        return LAYOUT_FILE if self.file is None else LIST_FILE_FMT % self.file

    def spec(self, base: int) -> str:
        """Its string in a scenario's `vmas` list."""
        kind = self.kind if self.file is None else f"{self.kind}:{self.file}@{self.offset:#x}"
        out = [f"{self.start - base:#x}", str(self.pages), self.prot, kind]
        if self.mapped_writable:
            out.append("w")
        if self.touched:
            out.append(f"t={self.touched}")
        if self.advice != "none":
            out.append(f"a={self.advice}")
        if self.noreserve:
            out.append("nr")
        return " ".join(out)

    def list_line(self) -> str:
        """Its line in guest_list(): START PAGES PROT KIND FILE PGOFF ADVICE TOUCHED FLAGS."""
        flags = (VF_NORESERVE if self.noreserve else 0) | (VF_MAPPED_WRITABLE if self.mapped_writable else 0)
        f = -1 if self.file is None else self.file
        return (f"{self.start:x} {self.pages} {self.prot} {self.kind} {f} {self.offset // PAGE_SIZE} "
                f"{self.advice} {self.touched} {flags}")

    def flags_key(self, stage: str) -> tuple:
        """What decides a merge with a neighbour of the same backing (vm_flags as far as the
        builder sets them) at each stage of building it: 'mmap', 'madvise', 'final'."""
        shared = self.kind.startswith("shared")
        prot = self.prot if stage == "final" else self.map_prot
        account = not shared and not self.noreserve and "w" in self.map_prot
        return (prot, shared, account, self.noreserve, "none" if stage == "mmap" else self.advice)


@dataclass(frozen=True)
class Scenario:
    name: str
    groups: tuple[Group, ...]
    base: int = DEFAULT_BASE
    gap_pages: int = 1
    description: str = ""
    repeat: int = 1
    source: str = field(default="<inline>", compare=False)
    vmas: tuple[LayoutVma, ...] = ()  # a list scenario's VMAs (absolute addresses); groups empty
    files: tuple[str, ...] = ()  # a list scenario's file names (documentation only)

    @property
    def is_list(self) -> bool:
        return bool(self.vmas)

    @property
    def layout_count(self) -> int:
        if self.vmas:
            return len(self.vmas)
        return sum(g.count for g in self.groups) * self.repeat

    @property
    def next_addr(self) -> int:
        """The first address after the layout: the end of the last VMA plus the gap (guest
        layout.c L->next), where spawn/forkcount's fill begins."""
        if self.vmas:
            return self.vmas[-1].end + PAGE_SIZE
        last = self.layout()[-1]
        return last.end + self.gap_pages * PAGE_SIZE

    @property
    def fill_gap_pages(self) -> int:
        return 1 if self.vmas else self.gap_pages

    def layout(self) -> list[LayoutVma]:
        if self.vmas:
            return list(self.vmas)
        out: list[LayoutVma] = []
        addr = self.base
        for g in self.groups * self.repeat:
            for _ in range(g.count):
                end = addr + g.pages * PAGE_SIZE
                out.append(LayoutVma(addr, end, g.prot, g.kind, g.advice, g.touch))
                addr = end + self.gap_pages * PAGE_SIZE
        return out

    def guest_args(self) -> list[str]:
        if self.vmas:
            return ["--layout-list", LIST_PATH]
        rep = ["--repeat", str(self.repeat)] if self.repeat != 1 else []
        return ["--base", hex(self.base), "--gap", str(self.gap_pages), *rep] + \
            [g.spec() for g in self.groups]

    def guest_list(self) -> str:
        """The file the guest builder reads with --layout-list (one VMA a line)."""
        return "".join(v.list_line() + "\n" for v in self.vmas)

    def vma_specs(self) -> list[str]:
        return [v.spec(self.base) for v in self.vmas]

    def to_dict(self, compact: bool = True) -> dict:
        """The scenario as a dict from_dict() reads back. A list scenario's VMAs are one
        zlib-compressed base64 string when compact (what every observation record carries)."""
        d = {"name": self.name, "description": self.description, "base": hex(self.base)}
        if self.vmas:
            if self.files:
                d["files"] = list(self.files)
            text = "\n".join(self.vma_specs())
            if compact:
                d["vmas_z"] = base64.b64encode(zlib.compress(text.encode(), 9)).decode()
            else:
                d["vmas"] = text.split("\n")
            return d
        d["gap_pages"] = self.gap_pages
        d["groups"] = [g.__dict__.copy() for g in self.groups]
        if self.repeat != 1:
            d["repeat"] = self.repeat
        return d


def _int(value, where: str) -> int:
    if isinstance(value, bool):
        raise ScenarioError(f"{where}: expected an integer, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value, 0)
        except ValueError:
            pass
    raise ScenarioError(f"{where}: expected an integer, got {value!r}")


def _choice(value, allowed: tuple[str, ...], where: str) -> str:
    if value not in allowed:
        raise ScenarioError(f"{where}: {value!r} is not one of {', '.join(allowed)}")
    return value


_KIND_RE = re.compile(r"(anon|shared-anon)|(file|shared-file):(\d+)@(0x[0-9a-fA-F]+|\d+)")


def parse_vma(text: object, base: int, where: str) -> LayoutVma:
    """One string of a scenario's `vmas` list: START PAGES PROT KIND [w] [t=N] [a=ADVICE] [nr]."""
    if not isinstance(text, str):
        raise ScenarioError(f"{where}: must be a string 'START PAGES PROT KIND [options]'")
    parts = text.split()
    if len(parts) < 4:
        raise ScenarioError(f"{where}: {text!r}: want 'START PAGES PROT KIND [options]'")
    start = base + _int(parts[0], f"{where} START")
    pages = _int(parts[1], f"{where} PAGES")
    if pages < 1:
        raise ScenarioError(f"{where}: PAGES must be >= 1, got {pages}")
    if (start - base) % PAGE_SIZE or start < base:
        raise ScenarioError(f"{where}: START must be a non-negative multiple of {PAGE_SIZE}")
    prot = _choice(parts[2], PROTS, f"{where} PROT")
    m = _KIND_RE.fullmatch(parts[3])
    if not m:
        raise ScenarioError(f"{where}: KIND {parts[3]!r} is not anon, shared-anon, file:I@OFFSET "
                            "or shared-file:I@OFFSET")
    if m.group(1):
        kind, file, offset = m.group(1), None, 0
    else:
        kind, file, offset = m.group(2), int(m.group(3)), int(m.group(4), 0)
        if offset % PAGE_SIZE:
            raise ScenarioError(f"{where}: file offset {offset:#x} is not page aligned")
        if file >= MAX_LIST_FILES:
            raise ScenarioError(f"{where}: file index {file} >= {MAX_LIST_FILES}")
    touched, advice, noreserve, writable = 0, "none", False, False
    for opt in parts[4:]:
        if opt == "w":
            writable = True
        elif opt == "nr":
            noreserve = True
        elif opt.startswith("t="):
            touched = _int(opt[2:], f"{where} t=")
            if not 0 <= touched <= pages:
                raise ScenarioError(f"{where}: t={touched} is not between 0 and PAGES ({pages})")
        elif opt.startswith("a="):
            advice = _choice(opt[2:], ADVICES, f"{where} a=")
        else:
            raise ScenarioError(f"{where}: unknown option {opt!r} (w, nr, t=N, a=ADVICE)")
    v = LayoutVma(start, start + pages * PAGE_SIZE, prot, kind, advice,
                  "all" if touched == pages else "none" if touched == 0 else str(touched),
                  file, offset, noreserve, writable)
    if touched and "w" not in v.map_prot:
        raise ScenarioError(f"{where}: pages can only be written with 'w' in prot or the w option")
    if advice == "wipeonfork" and kind != "anon":
        raise ScenarioError(f"{where}: wipeonfork is only allowed on private anonymous memory")
    return v


def _would_merge(prev: LayoutVma, v: LayoutVma) -> str | None:
    """Why the kernel would merge v into prev, the VMA right before it, while the builder
    makes v (mmap, madvise or mprotect), or None. Shared anonymous mappings never merge (each
    is its own shmem file)."""
    if prev.end != v.start or prev.kind != v.kind or v.kind == "shared-anon":
        return None
    if v.kind != "anon":
        if prev.file != v.file or prev.offset + (prev.end - prev.start) != v.offset:
            return None
    final = prev.flags_key("final")
    for stage in ("mmap", "madvise", "final"):
        if v.flags_key(stage) == final:
            return stage
    return None


def _list_from_dict(data: dict, name: str, base: int, source: str) -> Scenario:
    if "vmas_z" in data:
        try:
            raw = zlib.decompress(base64.b64decode(data["vmas_z"])).decode().split("\n")
        except (ValueError, zlib.error) as err:
            raise ScenarioError(f"{source}: field 'vmas_z' is not zlib+base64 text: {err}") from None
    else:
        raw = data.get("vmas")
    if not isinstance(raw, list) or not raw:
        raise ScenarioError(f"{source}: field 'vmas' must be a non-empty list")
    files = data.get("files", [])
    if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
        raise ScenarioError(f"{source}: field 'files' must be a list of strings")
    vmas: list[LayoutVma] = []
    for i, text in enumerate(raw):
        v = parse_vma(text, base, f"{source}: vmas[{i}]")
        if vmas:
            prev = vmas[-1]
            if v.start < prev.end:
                raise ScenarioError(f"{source}: vmas[{i}] at {v.start:#x} is below the end of "
                                    f"vmas[{i - 1}] ({prev.end:#x}): VMAs must ascend without overlap")
            why = _would_merge(prev, v)
            if why:
                raise ScenarioError(f"{source}: vmas[{i}] ({text}) would merge with vmas[{i - 1}] at "
                                    f"its {why} (same backing, contiguous offsets, same flags): make "
                                    "them differ ('w' or 'nr') or leave a gap")
        vmas.append(v)
    if vmas[-1].end > USER_TOP:
        raise ScenarioError(f"{source}: layout ends at {vmas[-1].end:#x}, above the user address space")
    return Scenario(name=name, groups=(), base=base, gap_pages=0, description=str(data.get("description", "")),
                    source=source, vmas=tuple(vmas), files=tuple(files))


def from_dict(data: object, source: str = "<inline>") -> Scenario:
    """Validate a parsed scenario; every error names `source` and the field."""
    if not isinstance(data, dict):
        raise ScenarioError(f"{source}: a scenario is a mapping with 'name' and 'groups' (or 'vmas')")
    known = {"name", "description", "base", "gap_pages", "groups", "repeat", "vmas", "vmas_z", "files"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ScenarioError(f"{source}: unknown field(s) {', '.join(map(str, unknown))}")
    name = data.get("name")
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise ScenarioError(f"{source}: field 'name' must be a word of [A-Za-z0-9_.-], got {name!r}")
    base = _int(data.get("base", DEFAULT_BASE), f"{source}: field 'base'")
    if base % PAGE_SIZE or base <= 0:
        raise ScenarioError(f"{source}: field 'base' must be a positive multiple of {PAGE_SIZE}")
    if "vmas" in data or "vmas_z" in data:
        both = sorted({"groups", "gap_pages", "repeat"} & set(data))
        if both:
            raise ScenarioError(f"{source}: a scenario with 'vmas' has no {', '.join(both)}")
        return _list_from_dict(data, name, base, source)
    gap = _int(data.get("gap_pages", 1), f"{source}: field 'gap_pages'")
    if gap < 0:
        raise ScenarioError(f"{source}: field 'gap_pages' must be >= 0")
    repeat = _int(data.get("repeat", 1), f"{source}: field 'repeat'")
    if repeat < 1:
        raise ScenarioError(f"{source}: field 'repeat' must be >= 1")
    raw_groups = data.get("groups")
    if not isinstance(raw_groups, list) or not raw_groups:
        raise ScenarioError(f"{source}: field 'groups' (or 'vmas') must be a non-empty list")
    groups = []
    gkeys = {"count", "pages", "prot", "kind", "advice", "touch"}
    for i, g in enumerate(raw_groups):
        where = f"{source}: groups[{i}]"
        if not isinstance(g, dict):
            raise ScenarioError(f"{where}: must be a mapping")
        bad = sorted(set(g) - gkeys)
        if bad:
            raise ScenarioError(f"{where}: unknown field(s) {', '.join(map(str, bad))}")
        if "count" not in g:
            raise ScenarioError(f"{where}: field 'count' is required")
        count = _int(g["count"], f"{where}.count")
        pages = _int(g.get("pages", 1), f"{where}.pages")
        if count < 1:
            raise ScenarioError(f"{where}.count: must be >= 1, got {count}")
        if pages < 1:
            raise ScenarioError(f"{where}.pages: must be >= 1, got {pages}")
        prot = _choice(g.get("prot", "rw"), PROTS, f"{where}.prot")
        kind = _choice(g.get("kind", "anon"), KINDS, f"{where}.kind")
        advice = _choice(g.get("advice", "none"), ADVICES, f"{where}.advice")
        touch = _choice(g.get("touch", "none"), TOUCHES, f"{where}.touch")
        if touch != "none" and "w" not in prot:
            raise ScenarioError(f"{where}.touch: pages can only be written with 'w' in prot (prot is {prot!r})")
        if advice == "wipeonfork" and kind != "anon":
            raise ScenarioError(f"{where}.advice: wipeonfork is only allowed on private anonymous memory (kind is {kind!r})")
        groups.append(Group(count, pages, prot, kind, advice, touch))
    sc = Scenario(name=name, groups=tuple(groups), base=base, gap_pages=gap,
                  description=str(data.get("description", "")), source=source, repeat=repeat)
    n = sc.layout_count
    per = sum(g.count * g.pages for g in groups) * repeat + n * gap
    if base + per * PAGE_SIZE > USER_TOP:
        raise ScenarioError(f"{source}: layout ends at {base + per * PAGE_SIZE:#x}, above the user "
                            "address space; lower 'base' or sizes")
    return sc


def load(path: str | Path) -> Scenario:
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as err:
        raise ScenarioError(f"{p}: cannot read scenario ({err.strerror})") from None
    try:
        data = json.loads(text) if p.suffix == ".json" else yaml.load(text, Loader=_Loader)
    except (json.JSONDecodeError, yaml.YAMLError) as err:
        raise ScenarioError(f"{p}: not valid {'JSON' if p.suffix == '.json' else 'YAML'}: {err}") from None
    return from_dict(data, source=str(p))


_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def dump_yaml(sc: Scenario, comments: list[str] = ()) -> str:
    """A list scenario as YAML (one VMA a line), with comment lines first."""
    out = [f"# {c}" for c in comments]
    out.append(f"name: {sc.name}")
    if sc.description:
        out.append(f"description: {json.dumps(sc.description)}")
    out.append(f"base: {sc.base:#x}")
    if sc.files:
        out.append("files:")
        out += [f"  - {json.dumps(f)}" for f in sc.files]
    out.append("vmas:")
    out += [f"  - {s}" for s in sc.vma_specs()]
    return "\n".join(out) + "\n"
