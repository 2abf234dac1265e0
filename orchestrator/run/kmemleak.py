"""kmemleak in the guest: a second opinion on fork's failure path. With `--kmemleak`
(KMEMLEAK=1) the faults suite boots its guests with `kmemleak=on` and ends every sweep with a
scan; objects the kernel allocated and no longer points to are reported with the stack that
allocated them, whether or not the simulator's model of dup_mmap() knows about them.

What the 6.12 source says (mm/kmemleak.c, Documentation/dev-tools/kmemleak.rst):
- The faults profile builds kmemleak with DEBUG_KMEMLEAK_DEFAULT_OFF: it tracks nothing unless
  the kernel is booted with `kmemleak=on`. Its thread scans 60 s after boot and every 600 s
  after (DEBUG_KMEMLEAK_AUTO_SCAN); setup() stops it (`scan=off`), so every scan is one of ours
  and its findings belong to the job just run.
- A scan reports an object when it is white (no pointer to it in the scanned memory), at
  least MSECS_MIN_AGE = 5 s old when the scan starts (jiffies_last_scan), and unchanged since
  the previous scan: update_checksum() paints an object whose contents changed, or that was
  never checksummed (a new one), gray for that scan. So a leak made by the sweep is reported by
  the second scan after it, if that scan starts 5 s or more after the allocation: scan, sleep
  5 s, scan. (Measured with the planted anon_vma leak after an anon-touched-21 sweep: a first
  scan 6 s after the sweep reports nothing, the next one all 16 objects; scans right after the
  sweep report nothing either, the objects being younger than 5 s.)
- A scan that finds new leaks prints "kmemleak: N new suspected memory leaks" (pr_info) on the
  console, a line the console watcher knows as a crash kind (orchestrator/vm/crash.py). Here the
  line is expected: the scan runs with Guest.run(tolerate={"kmemleak"}), then writes MARKER to
  /dev/kmsg and waits until the console shows it, so that the scan's own line has been seen
  and acknowledged before the next job; the leak is recorded once, as the `kmemleak` record,
  and the guest (a kmemleak report does not kill the kernel) goes on with the next job.
- Reading /sys/kernel/debug/kmemleak lists every reported object that is still unreferenced;
  `clear` paints them gray, so the next job's report holds only its own leaks.
- Writing anything but `clear` fails with EPERM when kmemleak is off: booted without
  `kmemleak=on`, or disabled after an internal error (e.g. its metadata pool ran out).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

from ..errors import ForkdiffError

BOOT_PARAM = "kmemleak=on"
KMEMLEAK = "/sys/kernel/debug/kmemleak"
MIN_AGE_S = 5  # MSECS_MIN_AGE / 1000
SCANS = 2
MARKER = "forkdiff-kmemleak: scan done"
TOLERATE = frozenset({"kmemleak"})
REPORT_LIMIT = 64_000  # characters of the report kept in a record
SCAN_TIMEOUT = 300.0
MARKER_TIMEOUT = 30.0


@dataclass
class Scan:
    """One end-of-job scan: the report text (empty: no leak) and the objects in it."""

    report: str
    objects: list[dict] = field(default_factory=list)
    scans: int = SCANS
    min_age_s: int = MIN_AGE_S
    seconds: float = 0.0  # wall time of the scan command
    console_lines: int = 0  # "new suspected memory leaks" lines the scan printed

    def values(self) -> dict:
        """The `values` of the observation record (docs/records.md)."""
        return {"objects": len(self.objects), "leaks": self.objects,
                "report": self.report[:REPORT_LIMIT], "truncated": len(self.report) > REPORT_LIMIT,
                "scans": self.scans, "min_age_s": self.min_age_s,
                "scan_seconds": round(self.seconds, 2), "console_lines": self.console_lines}


_OBJECT = re.compile(r"^unreferenced object (0x[0-9a-f]+) \(size (\d+)\):")
_COMM = re.compile(r'^\s+comm "(.*)", pid (\d+), jiffies (\d+)')
_FRAME = re.compile(r"^\s{4}(\S.*)$")


def parse_report(text: str) -> list[dict]:
    """The objects of a /sys/kernel/debug/kmemleak report (print_unreferenced()): address,
    size, the allocating task, and the backtrace frames as printed (%pS)."""
    objects: list[dict] = []
    in_trace = False
    for line in text.splitlines():
        m = _OBJECT.match(line)
        if m:
            objects.append({"address": m.group(1), "size": int(m.group(2)), "comm": "", "pid": None,
                            "backtrace": []})
            in_trace = False
            continue
        if not objects:
            continue
        obj = objects[-1]
        c = _COMM.match(line)
        if c:
            obj["comm"], obj["pid"] = c.group(1), int(c.group(2))
        elif line.strip().startswith("backtrace"):
            in_trace = True
        elif in_trace:
            f = _FRAME.match(line)
            if f:
                obj["backtrace"].append(f.group(1).strip())
    return objects


def summary(objects: list[dict], frames: int = 3) -> str:
    """One line per distinct allocation site: count, size and the first frames that are not
    kmemleak's or the slab allocator's own."""
    sites: dict[tuple, list[dict]] = {}
    for o in objects:
        trace = [f for f in o["backtrace"] if not _ALLOCATOR.match(f)][:frames]
        sites.setdefault((o["size"], tuple(trace)), []).append(o)
    return "\n".join(f"{len(objs)} x {size} bytes from {' <- '.join(trace) or '?'}"
                     for (size, trace), objs in sites.items())


_ALLOCATOR = re.compile(r"^(kmemleak_alloc|kmem_cache_alloc|__kmalloc|kmalloc|slab_post_alloc_hook|"
                        r"__slab_alloc|___slab_alloc|kmem_cache_alloc_noprof|kmem_cache_alloc_bulk)")


def setup(g) -> None:
    """Stop kmemleak's own scanning thread and forget what boot left reported. Fails when
    the guest's kmemleak is off."""
    r = g.run(f"echo scan=off > {KMEMLEAK} && echo clear > {KMEMLEAK}", timeout=60)
    if r.status != 0:
        raise ForkdiffError(f"kmemleak is off in the guest: {r.stderr.strip() or r.stdout.strip()}",
                            f"boot a faults-profile kernel (CONFIG_DEBUG_KMEMLEAK) with {BOOT_PARAM}")


def scan_command() -> str:
    return (f"set -e; echo scan > {KMEMLEAK}; sleep {MIN_AGE_S}; echo scan > {KMEMLEAK}; "
            f"cat {KMEMLEAK}; echo clear > {KMEMLEAK}; echo '{MARKER}' > /dev/kmsg")


def scan(g) -> Scan:
    """Scan twice MIN_AGE_S apart, read the report, clear it; wait until the console shows
    MARKER so that the scan's "new suspected memory leaks" line is acknowledged, not taken
    for a crash of the next command. ForkdiffError when the guest refuses (kmemleak off)."""
    w = getattr(g, "watcher", None)
    mark = w.mark() if w is not None else 0
    seen = len(getattr(g, "tolerated", []))
    t0 = time.monotonic()
    r = g.run(scan_command(), timeout=SCAN_TIMEOUT, tolerate=TOLERATE)
    seconds = time.monotonic() - t0
    if r.status != 0:
        raise ForkdiffError(f"kmemleak scan failed in the guest (status {r.status}): "
                            f"{r.stderr.strip() or r.stdout.strip()}",
                            "kmemleak may have disabled itself: read the console log")
    if w is not None:
        deadline = time.monotonic() + MARKER_TIMEOUT
        while not any(MARKER in line for line in w.lines_since(mark)):
            g.check(TOLERATE)
            if time.monotonic() > deadline:
                raise ForkdiffError(f"the console did not show {MARKER!r} within {MARKER_TIMEOUT:g} s "
                                    "after the kmemleak scan", "read the console log", g.console_log)
            time.sleep(0.05)
        g.check(TOLERATE)
    return Scan(report=r.stdout, objects=parse_report(r.stdout), seconds=seconds,
                console_lines=len(getattr(g, "tolerated", [])) - seen)
