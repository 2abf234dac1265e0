"""Unit tests of the console crash pattern table (orchestrator.vm.crash), no VM: on single lines
written in the kernel's printk formats, and on console excerpts captured from real guests
(tests/data/console: soft and hard lockup, hung task, RCU stalls; README.md there says how).
The excerpts are read as stored; nothing here stands in for a kernel."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from orchestrator.vm import crash

BOOT_OK = """\
[    0.000000] Linux version 6.12.57-forkdiff-patched-faults (gcc) #1 SMP
[    0.412345] Run /init as init process
[    1.000001] virtio_net virtio0 eth0: renamed
FORKDIFF-READY 6.12.57-forkdiff-patched-faults
[    2.100000] FAULT_INJECTION: forcing a failure.
[    2.100000] name failslab, interval 1, probability 0, space 0, times 1
[    2.100001] CPU: 0 UID: 0 PID: 91 Comm: faultdrv Not tainted 6.12.57 #1
[    2.100002] Call Trace:
[    2.100003]  <TASK>
[    2.100004]  dump_stack_lvl+0x5d/0x80
[    2.100005]  should_fail_ex+0x11b/0x140
[    2.100006]  </TASK>
sshd[90]: error: something mentioned BUG: in the middle of a line
echo WARNING: from a user program, not at a line start? no: printed after a prefix > WARNING: x
"""

SYSRQ_PANIC = """\
[   12.345678] sysrq: Trigger a crash
[   12.345700] Kernel panic - not syncing: sysrq triggered crash
[   12.345701] CPU: 0 UID: 0 PID: 95 Comm: sh Not tainted 6.12.57-forkdiff-baseline-faults #1
[   12.345702] Call Trace:
[   12.345703]  <TASK>
[   12.345704]  panic+0x31b/0x340
[   12.345705]  sysrq_handle_crash+0x15/0x20
[   12.345706]  </TASK>
[   12.345800] Rebooting in -1 seconds..
"""


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


def test_clean_boot_with_fault_injection_noise_is_not_a_crash() -> None:
    assert crash.scan(BOOT_OK) == []
    assert crash.first_crash(BOOT_OK) is None


def test_sysrq_panic_is_fatal_and_excerpt_has_context() -> None:
    text = BOOT_OK + SYSRQ_PANIC
    m = crash.first_crash(text)
    assert m is not None
    assert m.kind == "panic" and m.fatal
    assert "sysrq triggered crash" in m.line
    ex = crash.excerpt(text, m.line_no)
    assert "sysrq: Trigger a crash" in ex  # the line before the panic
    assert "sysrq_handle_crash" in ex  # the call trace after it
    assert ex.splitlines()[-1].endswith("Rebooting in -1 seconds..")


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


def _printk_format(fmt: str) -> re.Pattern[str]:
    """A printk format string as a regex matching the whole message it prints."""
    conv = {"%d": r"-?\d+", "%u": r"\d+", "%ld": r"-?\d+", "%s": r".+?"}
    parts = re.split(r"(%l?[dus])", fmt)
    return re.compile("".join(conv.get(x, re.escape(x)) for x in parts))


# file -> (kind, LKDTM function that caused it, the report's first line as the kernel source
# formats it: pr_fmt prefix + format string).
CAPTURED = {
    # kernel/watchdog.c, watchdog_timer_fn()
    "soft-lockup.log": ("soft-lockup", "lkdtm_SOFTLOCKUP",
                        "watchdog: BUG: soft lockup - CPU#%d stuck for %us! [%s:%d]"),
    # kernel/watchdog.c, watchdog_hardlockup_check(), reached through the buddy detector
    "hard-lockup.log": ("hard-lockup", "lkdtm_HARDLOCKUP",
                        "watchdog: Watchdog detected hard LOCKUP on cpu %d"),
    # kernel/hung_task.c, check_hung_task()
    "hung-task.log": ("hung-task", "lkdtm_HUNG_TASK",
                      "INFO: task %s:%d blocked for more than %ld seconds."),
    # kernel/rcu/tree_stall.h, print_other_cpu_stall() (rcu_state.name is rcu_sched under
    # PREEMPT_NONE) and print_cpu_stall()
    "rcu-stall-1cpu.log": ("rcu-stall", "lkdtm_SOFTLOCKUP",
                           "rcu: INFO: %s detected stalls on CPUs/tasks:"),
    "rcu-stall-2cpu.log": ("rcu-stall", "lkdtm_SOFTLOCKUP",
                           "rcu: INFO: %s self-detected stall on CPU"),
}


def _captured(name: str) -> str:
    return (CONSOLE / name).read_text()


def test_captured_files_are_all_tested() -> None:
    assert sorted(p.name for p in CONSOLE.glob("*.log")) == sorted(CAPTURED)


@pytest.mark.parametrize("name", sorted(CAPTURED))
def test_captured_report_names_its_kind(name: str) -> None:
    """Real console output: the report's first line names the kind and is not fatal (the
    detectors leave the kernel running); nothing before it (the boot's last lines, our
    /dev/kmsg note, LKDTM's own line) is taken for a crash; the excerpt starts at the report's
    first line when asked to, and by default holds the LKDTM function that caused it."""
    kind, culprit, fmt = CAPTURED[name]
    text = _captured(name)
    lines = text.splitlines()
    m = crash.first_crash(text)
    assert m is not None, f"{name}: no crash recognised"
    assert (m.kind, m.fatal) == (kind, False)
    assert _printk_format(fmt).fullmatch(crash.message_of(m.line)), m.line
    lkdtm = next(i for i, ln in enumerate(lines) if ln.startswith("lkdtm: Performing direct entry"))
    assert m.line_no > lkdtm
    assert crash.excerpt(text, m.line_no, before=0).splitlines()[0] == m.line
    assert culprit in crash.excerpt(text, m.line_no)
    # Every report line in the file (detectors repeat themselves) is of the same kind: the
    # register dumps, stack traces and "Tainted: [L]=SOFTLOCKUP" lines are not reports.
    assert {c.kind for c in crash.scan(text)} == {kind}


def _sample_lines() -> list[str]:
    """Every console line the tests of this module give a kind to."""
    lines = [line for line, kind in SAMPLE_LINES if kind is not None]
    for name in CAPTURED:
        text = _captured(name)
        m = crash.first_crash(text)
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
