"""Scenario files: the VMA layout a guest program builds and the simulator replays.

A scenario is YAML or JSON:

    name: dontfork-small           # required, [A-Za-z0-9_.-]+
    description: free text         # optional
    base: 0x100000000              # address of the first layout VMA (page aligned)
    gap_pages: 1                   # unmapped pages after every layout VMA (>= 0)
    repeat: 1                      # the groups, in order, this many times (>= 1)
    groups:                        # created in this order, at ascending addresses (at most 64)
      - count: 20                  # VMAs in this group (>= 1)
        pages: 1                   # size of each VMA in 4 KiB pages (>= 1)
        prot: rw                   # none | r | rw | rx | rwx
        kind: anon                 # anon | shared-anon | file | shared-file
        advice: none               # none | dontfork | wipeonfork (wipeonfork: private anon only)
        touch: all                 # none | first | all: pages written (needs 'w' in prot)

Layout VMA i of the whole list starts at base + sum(previous sizes + gap); with repeat N the
list is the groups' VMAs N times over (e.g. two 1-VMA groups of different prot, repeated, give
alternating neighbours that gap_pages 0 cannot merge). With gap_pages 0,
neighbours must differ in prot, kind or advice, or the kernel would merge them; the guest
builder checks its own /proc/self/maps and fails on any merge. File-backed VMAs map offset 0 of
one file created by the guest builder. The guest builder receives `guest_args()` on its command
line: `--base 0x... --gap N [--repeat N] COUNTxPAGES:PROT:KIND:ADVICE:TOUCH ...`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

PAGE_SIZE = 4096
PROTS = ("none", "r", "rw", "rx", "rwx")
KINDS = ("anon", "shared-anon", "file", "shared-file")
ADVICES = ("none", "dontfork", "wipeonfork")
TOUCHES = ("none", "first", "all")
DEFAULT_BASE = 0x1_0000_0000
USER_TOP = 0x7FFF_FFFF_F000  # TASK_SIZE on x86-64 with 4-level paging
MAX_GROUPS = 64  # the guest layout builder's limit: MAX_GROUPS in guest/layout.h


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
    touch: str


@dataclass(frozen=True)
class Scenario:
    name: str
    groups: tuple[Group, ...]
    base: int = DEFAULT_BASE
    gap_pages: int = 1
    description: str = ""
    repeat: int = 1
    source: str = field(default="<inline>", compare=False)

    @property
    def layout_count(self) -> int:
        return sum(g.count for g in self.groups) * self.repeat

    def layout(self) -> list[LayoutVma]:
        out: list[LayoutVma] = []
        addr = self.base
        for g in self.groups * self.repeat:
            for _ in range(g.count):
                end = addr + g.pages * PAGE_SIZE
                out.append(LayoutVma(addr, end, g.prot, g.kind, g.advice, g.touch))
                addr = end + self.gap_pages * PAGE_SIZE
        return out

    def guest_args(self) -> list[str]:
        rep = ["--repeat", str(self.repeat)] if self.repeat != 1 else []
        return ["--base", hex(self.base), "--gap", str(self.gap_pages), *rep] + \
            [g.spec() for g in self.groups]

    def to_dict(self) -> dict:
        d = {
            "name": self.name,
            "description": self.description,
            "base": hex(self.base),
            "gap_pages": self.gap_pages,
            "groups": [g.__dict__.copy() for g in self.groups],
        }
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


def from_dict(data: object, source: str = "<inline>") -> Scenario:
    """Validate a parsed scenario; every error names `source` and the field."""
    if not isinstance(data, dict):
        raise ScenarioError(f"{source}: a scenario is a mapping with 'name' and 'groups'")
    known = {"name", "description", "base", "gap_pages", "groups", "repeat"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ScenarioError(f"{source}: unknown field(s) {', '.join(map(str, unknown))}")
    name = data.get("name")
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise ScenarioError(f"{source}: field 'name' must be a word of [A-Za-z0-9_.-], got {name!r}")
    base = _int(data.get("base", DEFAULT_BASE), f"{source}: field 'base'")
    if base % PAGE_SIZE or base <= 0:
        raise ScenarioError(f"{source}: field 'base' must be a positive multiple of {PAGE_SIZE}")
    gap = _int(data.get("gap_pages", 1), f"{source}: field 'gap_pages'")
    if gap < 0:
        raise ScenarioError(f"{source}: field 'gap_pages' must be >= 0")
    repeat = _int(data.get("repeat", 1), f"{source}: field 'repeat'")
    if repeat < 1:
        raise ScenarioError(f"{source}: field 'repeat' must be >= 1")
    raw_groups = data.get("groups")
    if not isinstance(raw_groups, list) or not raw_groups:
        raise ScenarioError(f"{source}: field 'groups' must be a non-empty list")
    if len(raw_groups) > MAX_GROUPS:
        raise ScenarioError(f"{source}: field 'groups' has {len(raw_groups)} groups; the guest "
                            f"layout builder takes at most {MAX_GROUPS} (neighbouring groups with the same "
                            "pages, prot, kind, advice and touch can be one group with a larger count)")
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
    last = sc.layout()[-1]
    if last.end > USER_TOP:
        raise ScenarioError(f"{source}: layout ends at {last.end:#x}, above the user address space; lower 'base' or sizes")
    return sc


def load(path: str | Path) -> Scenario:
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as err:
        raise ScenarioError(f"{p}: cannot read scenario ({err.strerror})") from None
    try:
        data = json.loads(text) if p.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as err:
        raise ScenarioError(f"{p}: not valid {'JSON' if p.suffix == '.json' else 'YAML'}: {err}") from None
    return from_dict(data, source=str(p))
