"""Recognise kernel crash reports in a console log: a declarative table of patterns, in the
spirit of syzkaller's report package. Pure functions over text; the VM's console watcher
(orchestrator.vm.guest) feeds them line by line."""

from __future__ import annotations

import re
from dataclasses import dataclass

# A console line as printk writes it: optional "[    1.234567]" timestamp, optional caller
# id "[    T1]"/"[  C0]", then the message. Patterns are matched against the message only, at
# its start, so a user program echoing "BUG:" in the middle of a line is not a crash.
_PREFIX = re.compile(r"^(?:<\d+>)?(?:\[\s*\d+\.\d+\]\s?)?(?:\[\s*[TC]\d+\]\s?)?")


@dataclass(frozen=True)
class CrashPattern:
    kind: str  # short name used in reports and exceptions
    regex: re.Pattern[str]  # matched at the start of the message part of a console line
    fatal: bool  # the kernel is certainly dead (QEMU will exit with -no-reboot / panic=-1)


def _p(kind: str, regex: str, fatal: bool = False) -> CrashPattern:
    return CrashPattern(kind, re.compile(regex), fatal)


# Order matters: the first pattern that matches a line names it (specific before generic).
PATTERNS: tuple[CrashPattern, ...] = (
    _p("panic", r"Kernel panic - not syncing", fatal=True),
    _p("kasan", r"(?:BUG: )?KASAN: "),
    _p("kmemleak", r"kmemleak: \d+ new suspected memory leaks"),
    _p("ubsan", r"UBSAN: "),
    _p("gpf", r"general protection fault"),
    _p("page-fault", r"(?:BUG: )?[Uu]nable to handle (?:kernel|page)"),
    _p("null-deref", r"BUG: kernel NULL pointer dereference"),
    _p("lockdep", r"(?:WARNING|BUG): (?:possible circular locking|possible recursive locking|bad unlock balance|held lock freed|lock held when returning)"),
    # Progress detectors. None of them kills the kernel (softlockup_panic, hardlockup_panic,
    # hung_task_panic and panic_on_rcu_stall are 0 by default), so, like a WARNING, they are
    # not fatal: the case is crashed and the guest replaced. kernel/watchdog.c prints through
    # pr_fmt "watchdog: " (the perf-based hard lockup detector of older kernels: "NMI
    # watchdog: "), kernel/rcu/tree.c through "rcu: "; kernel/hung_task.c has no prefix.
    _p("soft-lockup", r"(?:watchdog: )?BUG: soft lockup - CPU#\d+ stuck for"),
    _p("hard-lockup", r"(?:(?:NMI )?watchdog: )?Watchdog detected hard LOCKUP on cpu \d+"),
    _p("hung-task", r"INFO: task .+:\d+ blocked for more than \d+ seconds"),
    # kernel/rcu/tree_stall.h: "detected stalls on CPUs/tasks:" (seen by another CPU),
    # "self-detected stall on CPU", "detected stall, but suppressed ..."; tree_exp.h:
    # "detected expedited stalls ..."; tasks.h: rcu_tasks / rcu_tasks_trace "detected stalls
    # on tasks:". The flavour is rcu_sched or rcu_preempt, after the preemption model.
    _p("rcu-stall", r"(?:rcu: )?INFO: rcu_\w+ (?:self-)?detected(?: expedited)? stalls?\b"),
    _p("bug", r"BUG: "),
    _p("bug", r"kernel BUG at "),
    _p("oops", r"Oops: "),
    _p("warning", r"WARNING: "),
)


@dataclass(frozen=True)
class CrashMatch:
    kind: str
    line_no: int  # 0-based index of the matching line in the text it was found in
    line: str
    fatal: bool


def message_of(line: str) -> str:
    """The message part of a console line (timestamp and caller id removed)."""
    return _PREFIX.sub("", line.rstrip("\r\n"), count=1)


def match_line(line: str) -> CrashPattern | None:
    """The first pattern of the table matching this console line, or None."""
    msg = message_of(line)
    for pat in PATTERNS:
        if pat.regex.match(msg):
            return pat
    return None


def scan(text: str) -> list[CrashMatch]:
    """Every crash line in a console text, in order."""
    found = []
    for i, line in enumerate(text.splitlines()):
        pat = match_line(line)
        if pat is not None:
            found.append(CrashMatch(pat.kind, i, line.rstrip("\r"), pat.fatal))
    return found


def first_crash(text: str) -> CrashMatch | None:
    found = scan(text)
    return found[0] if found else None


def excerpt(text: str, line_no: int, before: int = 10, after: int = 40) -> str:
    """The crash line with `before` lines of context before it and `after` lines after it."""
    lines = text.splitlines()
    lo = max(0, line_no - before)
    hi = min(len(lines), line_no + after + 1)
    return "\n".join(line.rstrip("\r") for line in lines[lo:hi])
