"""Unit tests of the console crash pattern table (orchestrator.vm.crash), no VM: on single lines
written in the kernel's printk formats, and on the console fixtures in tests/data/console, each of
which states its expected result in a header (KIND, FATAL, CULPRIT, FORMAT; as syzkaller's report
testdata does), read by one parametrized test. Most are captured from real guests (soft and hard
lockup, hung task, RCU stalls); two are hand-written in printk's formats and say so (CAPTURED:
no). The files are read as stored; nothing here stands in for a kernel."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from orchestrator.run.observers import crash_observer, crash_words
from orchestrator.run.suites import sweep_step
from orchestrator.vm import crash

SAMPLE_LINES = [
        ("[    5.000000] Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000100", "panic"),
        ("[    5.000000] BUG: kernel NULL pointer dereference, address: 0000000000000008", "null-deref"),
        ("[    5.000000] BUG: unable to handle page fault for address: ffffc90000a3c000", "page-fault"),
        ("[    5.000000] Unable to handle kernel paging request at virtual address 0", "page-fault"),
        ("[    5.000000] Oops: general protection fault, probably for non-canonical address 0xdead", "oops"),
        ("[    5.000000] general protection fault, probably for non-canonical address", "gpf"),
        ("[    5.000000] WARNING: CPU: 0 PID: 1 at mm/mmap.c:1234 dup_mmap+0x2a/0x500", "warning"),
        ("[    5.000000] ------------[ cut here ]------------", None),
        ("[    5.000000] kernel BUG at mm/mmap.c:300!", "bug"),
        ("[    5.000000] BUG: sleeping function called from invalid context at mm/slub.c:4100", "bug"),
        ("[    5.000000] BUG: KASAN: slab-use-after-free in mas_walk+0x1c/0x100", "kasan"),
        ("[    5.000000] kmemleak: 3 new suspected memory leaks (see /sys/kernel/debug/kmemleak)", "kmemleak"),
        ("[    5.000000] UBSAN: array-index-out-of-bounds in lib/maple_tree.c:1234:5", "ubsan"),
        # kernel/locking/lockdep.c, print_circular_bug_header()
        ("[    5.000000] WARNING: possible circular locking dependency detected", "lockdep"),
        ("[    5.000000] [    T1] BUG: Bad page state in process init  pfn:0x1234", "bug"),
        ("Kernel panic - not syncing: VFS: Unable to mount root fs", "panic"),  # no timestamp
        ("[    5.000000] kmemleak: Kernel memory leak detector initialized (mem pool available: 1)", None),
        ("[    5.000000] FAULT_INJECTION: forcing a failure.", None),
        ("sshd[90]: error: user program printed BUG: in the middle", None),
        ("FORKDIFF-READY 6.12.57-forkdiff-patched-faults", None),
]


@pytest.mark.parametrize(("line", "kind"), SAMPLE_LINES)
def test_match_line_names_the_kind(line: str, kind: str | None) -> None:
    pat = crash.match_line(line)
    assert (pat.kind if pat else None) == kind


def test_excerpt_is_bounded() -> None:
    lines = [f"[ {i}.0] line {i}" for i in range(200)]
    lines[100] = "[ 100.0] Oops: 0000 [#1] SMP"
    text = "\n".join(lines)
    m = crash.first_crash(text)
    assert m is not None and m.line_no == 100 and m.kind == "oops"
    ex = crash.excerpt(text, m.line_no, before=10, after=40).splitlines()
    assert len(ex) == 51
    assert ex[0] == "[ 90.0] line 90" and ex[-1] == "[ 140.0] line 140"


def test_scan_reports_every_crash_in_order() -> None:
    text = ("[1.0] WARNING: CPU: 0 PID: 1 at kernel/fork.c:1 x\n"
            "[1.1] ok\n"
            "[2.0] BUG: KASAN: use-after-free in y\n")
    assert [(m.kind, m.line_no) for m in crash.scan(text)] == [("warning", 0), ("kasan", 2)]


CONSOLE = Path(__file__).resolve().parents[1] / "data" / "console"


@dataclass(frozen=True)
class Fixture:
    """A console fixture: the expected result its header states, and the console text after it."""

    name: str
    kind: str | None  # "none" in the file: no crash anywhere in it
    kinds: tuple[str, ...]  # every report line's kind, in order of first appearance
    fatal: bool | None
    culprit: str  # a function the default excerpt must hold
    context: str  # a line before the report the default excerpt must hold ("": not stated)
    fmt: str  # the report's first line as the kernel source formats it (pr_fmt + format)
    k: int | None  # the fault sweep's step the crash happened in (None: no sweep announced)
    observers: tuple[str, ...]  # the observers running (OBSERVERS=; empty: none)
    observer: str | None  # ... the one the report's task names
    words: str  # what the crash record says of the observers
    console: str


def fixture(name: str) -> Fixture:
    """Parse a fixture: `KEY: value` lines (a line starting with blanks continues the one before)
    up to the first empty line, then the console as captured."""
    head, sep, console = (CONSOLE / name).read_text().partition("\n\n")
    assert sep, f"{name}: no header (KEY: value lines, then an empty line)"
    fields: dict[str, str] = {}
    key = ""
    for line in head.splitlines():
        if line[:1].isspace() and key:
            fields[key] += " " + line.strip()
            continue
        key, colon, value = line.partition(": ")
        assert colon and key.isupper(), f"{name}: not a header line: {line!r}"
        fields[key] = value.strip()
    assert "KIND" in fields and "CAPTURED" in fields, f"{name}: the header must say KIND and CAPTURED"
    kind = None if fields["KIND"] == "none" else fields["KIND"]
    fatal = {"yes": True, "no": False}[fields["FATAL"]] if kind else None
    kinds = tuple(fields["KINDS"].split()) if "KINDS" in fields else (kind,) if kind else ()
    k = int(fields["K"]) if fields.get("K", "none") != "none" else None
    observers = tuple(fields.get("OBSERVERS", "").replace(",", " ").split())
    observer = fields.get("OBSERVER", "none")
    return Fixture(name, kind, kinds, fatal, fields.get("CULPRIT", ""), fields.get("CONTEXT", ""),
                   fields.get("FORMAT", ""), k, observers, None if observer == "none" else observer,
                   fields.get("WORDS", ""), console)


FIXTURES = sorted(p.name for p in CONSOLE.glob("*.log"))


def _printk_format(fmt: str) -> re.Pattern[str]:
    """A printk format string as a regex matching the whole message it prints."""
    conv = {"%d": r"-?\d+", "%u": r"\d+", "%ld": r"-?\d+", "%s": r".+?", "%px": r"[0-9a-f]{16}"}
    parts = re.split(r"(%px|%l?[dus])", fmt)
    return re.compile("".join(conv.get(x, re.escape(x)) for x in parts))


@pytest.mark.parametrize("name", FIXTURES)
def test_console_fixture_gives_its_stated_result(name: str) -> None:
    """Each fixture's header states what the table must find: KIND none, no crash at all;
    otherwise the first crash is of KIND and FATAL as stated, its line is the kernel's FORMAT,
    nothing before it (the boot's last lines, our /dev/kmsg note, LKDTM's own line) is taken
    for a crash, the excerpt starts at the report's first line when asked to and by default
    holds the CULPRIT function (and the CONTEXT line before the report), and the report lines
    in the file are of the KINDS stated (by default KIND alone: detectors repeat themselves;
    register dumps, stack traces and "Tainted: [L]=SOFTLOCKUP" lines are not reports). The
    fault sweep's step announced last before the report is K (none: no sweep), and with
    OBSERVERS running the report's task names OBSERVER, in the crash record's WORDS."""
    f = fixture(name)
    m = crash.first_crash(f.console)
    if f.kind is None:
        assert m is None and crash.scan(f.console) == []
        return
    assert m is not None, f"{name}: no crash recognised"
    assert (m.kind, m.fatal) == (f.kind, f.fatal)
    assert tuple(dict.fromkeys(c.kind for c in crash.scan(f.console))) == f.kinds
    if f.fmt:
        assert _printk_format(f.fmt).fullmatch(crash.message_of(m.line)), m.line
    lines = f.console.splitlines()
    lkdtm = next((i for i, ln in enumerate(lines) if ln.startswith("lkdtm: Performing direct entry")), -1)
    assert m.line_no > lkdtm
    assert crash.excerpt(f.console, m.line_no, before=0).splitlines()[0] == m.line
    report = crash.excerpt(f.console, m.line_no)  # what a crash record keeps (GuestCrashed)
    assert f.culprit in report
    if f.context:
        assert f.context in report.split(m.line)[0]
    assert sweep_step(lines[:m.line_no]) == f.k
    assert crash_observer(report, f.observers) == f.observer
    assert crash_words(report, f.observers) == f.words


def test_observer_named_only_when_asked_and_in_its_task() -> None:
    """The observer fixture's report, told other observers or another task: no observer named."""
    f = fixture("observer-swapoff-null-deref.log")
    m = crash.first_crash(f.console)
    assert m is not None and f.observer is not None
    report = crash.excerpt(f.console, m.line_no)
    task = f"obs-{f.observer}"
    assert crash_observer(report, ("proc",)) is None  # an observer not asked for is not named
    assert crash_words(report, ()) == ""
    other = report.replace(f"Comm: {task}", "Comm: faultsweep")
    assert crash_observer(other, f.observers) is None
    assert crash_words(other, f.observers) == f"in task faultsweep, observers {','.join(f.observers)} running"


def _sample_lines() -> list[str]:
    """Every console line the tests of this module give a kind to."""
    lines = [line for line, kind in SAMPLE_LINES if kind is not None]
    for name in FIXTURES:
        m = crash.first_crash(fixture(name).console)
        if m is not None:
            lines.append(m.line)
    return lines


def test_every_pattern_is_reachable() -> None:
    """Each entry of the table names at least one real or kernel-format line that no entry
    before it takes: an entry shadowed by an earlier, more generic one (or one no sample
    exercises) fails here."""
    first_matches = [crash.match_line(line) for line in _sample_lines()]
    unreached = [(p.kind, p.regex.pattern) for p in crash.PATTERNS
                 if not any(m is p for m in first_matches)]
    assert unreached == []
    for p in crash.PATTERNS:
        assert re.fullmatch(r"[a-z]+(?:-[a-z]+)*", p.kind), p.kind
