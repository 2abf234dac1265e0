"""OBSERVERS= / --observers: tasks that run beside the fault sweep and reach the failing
children's mm the ways the kernel allows (guest/observe.c; docs/observers.md).

This module holds what the host does about them: the knob's parsing (the swap and zram they
need are in the faults profile, kconfig/faults.config), faultsweep's arguments, and, after a sweep, which observer's iterations overlapped which
fork (the observers' and faultsweep's timestamps share the guest's CLOCK_MONOTONIC), and which
observer a crash happened in (its task is named obs-<name>, which an oops prints as Comm)."""

from __future__ import annotations

import re
from collections.abc import Iterable

from ..errors import ForkdiffError

OBSERVERS = ("swapoff", "rmap", "proc")
DEFAULT_SEED = 1
PAUSE_US = 2000  # each observer pauses 0..PAUSE_US µs (seeded) between iterations
TASK_PREFIX = "obs-"


def parse_observers(text: str | None) -> tuple[str, ...]:
    """OBSERVERS=: empty/none (default), all, or a comma/space list of OBSERVERS, in
    OBSERVERS order."""
    words = [w for w in (text or "").replace(",", " ").split() if w]
    if not words or words == ["none"]:
        return ()
    if words == ["all"]:
        return OBSERVERS
    bad = [w for w in words if w not in OBSERVERS]
    if bad:
        raise ForkdiffError(f"OBSERVERS={text!r}: unknown observer {', '.join(bad)}",
                            f"use all, none, or a list of: {', '.join(OBSERVERS)}")
    return tuple(o for o in OBSERVERS if o in words)


def parse_seed(text: str | None) -> int:
    try:
        seed = int(text) if text not in (None, "") else DEFAULT_SEED
    except ValueError:
        seed = -1
    if seed < 0:
        raise ForkdiffError(f"OBSERVER_SEED={text!r} is not a non-negative integer", "e.g. OBSERVER_SEED=1")
    return seed


def sweep_args(observers: Iterable[str], seed: int) -> tuple[str, ...]:
    """faultsweep's options that start the observers beside the sweep."""
    obs = tuple(observers)
    if not obs:
        return ()
    return ("--observers", ",".join(obs), "--observer-seed", str(seed),
            "--observer-pause-us", str(PAUSE_US))


def _intervals(t_us: list[int]) -> list[tuple[int, int]]:
    return [(t_us[i], t_us[i + 1]) for i in range(0, len(t_us) - 1, 2)]


def overlaps(fork_us: list[int] | None, intervals: list[tuple[int, int]]) -> int:
    """How many observer iterations [t0, t1] overlap the fork syscall [f0, f1]."""
    if not fork_us or len(fork_us) != 2:
        return 0
    f0, f1 = fork_us
    return sum(1 for t0, t1 in intervals if t0 <= f1 and t1 >= f0)


def annotate(records: list) -> list:
    """ParsedRecords of one faultsweep run with observers: every fault record gets
    `observers` {name: iterations overlapping its fork}; every observer record gets a summary
    (ks_overlapped, first/last k) instead of its raw intervals (t_us). Others unchanged."""
    from .suite_parse import ParsedRecord

    obs = [r for r in records if r.measurement == "observer"]
    if not obs:
        return records
    iv = {r.values.get("observer"): _intervals(r.values.get("t_us") or []) for r in obs}
    faults = [r for r in records if r.measurement == "fault"]
    per_k: dict[int, dict[str, int]] = {}
    for r in faults:
        per_k[r.values["k"]] = {name: overlaps(r.values.get("fork_us"), ivs) for name, ivs in iv.items()}
    out = []
    for r in records:
        if r.measurement == "fault":
            values = {**r.values, "observers": per_k.get(r.values["k"], {})}
            out.append(ParsedRecord(r.measurement, r.repeat, r.value, values))
        elif r.measurement == "observer":
            name = r.values.get("observer")
            ks = [k for k, m in sorted(per_k.items()) if m.get(name)]
            values = {k: v for k, v in r.values.items() if k != "t_us"}
            values.update(ks_overlapped=len(ks), forks=len(faults),
                          overlapping_iterations=sum(m.get(name, 0) for m in per_k.values()),
                          first_k=ks[0] if ks else None, last_k=ks[-1] if ks else None)
            out.append(ParsedRecord(r.measurement, name, r.values.get("iterations"), values))
        else:
            out.append(r)
    return out


_COMM = re.compile(r"\bComm: (\S+)")


def crash_task(console: str) -> str | None:
    """The task an oops/BUG/WARNING report names (Comm: ...), the first in the excerpt."""
    m = _COMM.search(console or "")
    return m.group(1) if m else None


def crash_observer(console: str, observers: Iterable[str]) -> str | None:
    """The observer whose task the crash report names (obs-swapoff -> swapoff), or None when
    it names another task (faultsweep itself, a kernel thread) or none."""
    task = crash_task(console)
    if task and task.startswith(TASK_PREFIX) and task[len(TASK_PREFIX):] in tuple(observers):
        return task[len(TASK_PREFIX):]
    return None


def crash_words(console: str, observers: Iterable[str]) -> str:
    """What a crash record says about the observers: which one the report names, or that the
    crash is in another task while they ran."""
    obs = tuple(observers)
    if not obs:
        return ""
    who = crash_observer(console, obs)
    if who:
        return f"in observer {who} (task {TASK_PREFIX}{who})"
    task = crash_task(console)
    return (f"in task {task}" if task else "in an unnamed task") + f", observers {','.join(obs)} running"
