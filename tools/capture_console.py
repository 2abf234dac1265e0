"""Capture what the kernel's progress detectors print, from real guests, as test data for the
crash table (orchestrator.vm.crash; tests/data/console/, tests/pure/test_crash_patterns.py).

    python3 -m tools.capture_console --variant baseline --out tests/data/console

Each condition gets a fresh guest of the faults kernel (the detectors are built in there,
see kconfig/faults.config): lower a threshold, note the settings on the console through
/dev/kmsg, provoke the condition with LKDTM in the background (SOFTLOCKUP and HUNG_TASK never
return), wait for the report and keep the console from the note to a few dozen lines after
the report's first line. The report is found by the text the kernel source prints, not by the
crash table under test."""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

from orchestrator.prepare.kernel import build_kernel
from orchestrator.prepare.rootfs import build_rootfs
from orchestrator.vm.guest import Guest, GuestCrashed

DIRECT = "/sys/kernel/debug/provoke-crash/DIRECT"


@dataclass(frozen=True)
class Condition:
    name: str  # file name stem
    smp: int
    settings: tuple[tuple[str, str], ...]  # (file, value) written before provoking
    lkdtm: str  # LKDTM crash type
    needle: str  # text of the report's first line (from the kernel source)
    kind: str  # the crash table's kind the report must get (the file's KIND: header)
    fmt: str  # the report's first line as the kernel source formats it (FORMAT:)
    source: str  # where the kernel prints it (SOURCE:)


CONDITIONS = (
    # kernel/watchdog.c: soft lockup after 2 * watchdog_thresh seconds.
    Condition("soft-lockup", 1, (("/proc/sys/kernel/watchdog_thresh", "1"),),
              "SOFTLOCKUP", "BUG: soft lockup", "soft-lockup",
              "watchdog: BUG: soft lockup - CPU#%d stuck for %us! [%s:%d]",
              "kernel/watchdog.c, watchdog_timer_fn()"),
    # The buddy detector: CPU n+1 watches CPU n's hrtimer interrupts (needs 2 CPUs).
    Condition("hard-lockup", 2, (("/proc/sys/kernel/watchdog_thresh", "1"),),
              "HARDLOCKUP", "Watchdog detected hard LOCKUP", "hard-lockup",
              "watchdog: Watchdog detected hard LOCKUP on cpu %d",
              "kernel/watchdog.c, watchdog_hardlockup_check(), reached through the buddy detector"),
    # kernel/hung_task.c: a TASK_UNINTERRUPTIBLE task not scheduled for the timeout.
    Condition("hung-task", 1, (("/proc/sys/kernel/hung_task_timeout_secs", "1"),),
              "HUNG_TASK", "blocked for more than", "hung-task",
              "INFO: task %s:%d blocked for more than %ld seconds.",
              "kernel/hung_task.c, check_hung_task()"),
    # kernel/rcu/tree_stall.h: a CPU spinning with preemption off is an RCU stall long before
    # the soft lockup detector (default 20 s) reports it. On one CPU the grace-period kthread
    # cannot run and the tick reports "detected stalls on CPUs/tasks" (kthread starved); on
    # two, the spinning CPU's tick reports "self-detected stall on CPU".
    Condition("rcu-stall-1cpu", 1, (("/sys/module/rcupdate/parameters/rcu_cpu_stall_timeout", "3"),),
              "SOFTLOCKUP", "detected stall", "rcu-stall", "rcu: INFO: %s detected stalls on CPUs/tasks:",
              "kernel/rcu/tree_stall.h, print_other_cpu_stall() (rcu_state.name is rcu_sched under "
              "PREEMPT_NONE)"),
    Condition("rcu-stall-2cpu", 2, (("/sys/module/rcupdate/parameters/rcu_cpu_stall_timeout", "3"),),
              "SOFTLOCKUP", "detected stall", "rcu-stall", "rcu: INFO: %s self-detected stall on CPU",
              "kernel/rcu/tree_stall.h, print_cpu_stall()"),
)


def capture(cond: Condition, variant: str, wait: float, after: int) -> tuple[str, str]:
    """(kernel release, console excerpt) for one condition on a fresh guest."""
    kernel = build_kernel(variant, "faults", progress=False)
    with Guest(kernel, build_rootfs(), smp=cond.smp) as g:
        assert g.watcher is not None
        release = g.run("uname -r", timeout=60).stdout.strip()
        sets = "; ".join(f"echo {v} > {f}" for f, v in cond.settings)
        note = f"forkdiff-capture: smp={cond.smp} {' '.join(f'{Path(f).name}={v}' for f, v in cond.settings)} lkdtm={cond.lkdtm}"
        start = g.watcher.mark()
        g.run(f"{sets}; echo '{note}' > /dev/kmsg", timeout=60)
        try:
            g.run(f"setsid sh -c 'echo {cond.lkdtm} > {DIRECT}' </dev/null >/dev/null 2>&1 &", timeout=30)
        except GuestCrashed:
            pass  # the report came before the command returned
        deadline = time.monotonic() + wait
        hit = None
        while hit is None and time.monotonic() < deadline:
            time.sleep(0.5)
            hit = next((i for i, ln in enumerate(g.watcher.lines_since(start)) if cond.needle in ln), None)
        if hit is None:
            raise SystemExit(f"{cond.name}: no {cond.needle!r} within {wait:g} s; console {g.console_log}")
        time.sleep(5)  # the rest of the report (registers, call trace)
        lines = g.watcher.lines_since(start)
        first = next(i for i, ln in enumerate(lines) if "forkdiff-capture:" in ln)
        return release, "\n".join(lines[first:hit + 1 + after]) + "\n"


def header(cond: Condition, release: str) -> str:
    """The expected result, stated in the file (as syzkaller's report testdata does): KEY: value
    lines and an empty line before the console (tests/pure/test_crash_patterns.py reads them).
    The progress detectors let the kernel run on: FATAL no."""
    return (f"KIND: {cond.kind}\nFATAL: no\nCULPRIT: lkdtm_{cond.lkdtm}\nFORMAT: {cond.fmt}\n"
            f"SOURCE: {cond.source}\nCAPTURED: {release}, python3 -m tools.capture_console\n\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variant", default="baseline")
    ap.add_argument("--out", type=Path, default=Path("tests/data/console"))
    ap.add_argument("--only", nargs="*", help="condition names (default: all)")
    ap.add_argument("--wait", type=float, default=60, help="seconds to wait for each report")
    ap.add_argument("--after", type=int, default=40, help="lines kept after the report's first line")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for cond in CONDITIONS:
        if args.only and cond.name not in args.only:
            continue
        t0 = time.monotonic()
        release, text = capture(cond, args.variant, args.wait, args.after)
        path = args.out / f"{cond.name}.log"
        path.write_text(header(cond, release) + text)
        print(f"{cond.name}: {release}, {len(text.splitlines())} lines -> {path} "
              f"({time.monotonic() - t0:.0f} s)")


if __name__ == "__main__":
    main()
