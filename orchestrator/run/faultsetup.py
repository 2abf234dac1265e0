"""Fault-injection set-up in a running guest, done before a fault sweep (never by hand).

What the 6.12 source says (lib/fault-inject.c should_fail_ex, mm/failslab.c,
mm/fail_page_alloc.c):
- fail-nth is per task and is checked *first*: while current->fail_nth != 0 every check of any
  fault attribute counts down, and the k-th one fails, whatever `probability`, `interval`,
  `times`, `space` and `task-filter` say (those are only read on the non-fail-nth path).
  The only filter fail-nth honours is the stack-trace filter (require/reject ranges): a check
  whose stack is outside the range neither counts nor fails.
- So we set `probability` = 0 on every attribute: nothing fails except what fail-nth arms,
  and other tasks (sshd, ...) never see an injected failure.
- failslab: `ignore-gfp-wait` defaults to Y, which skips every allocation that may sleep,
  i.e. nearly all of fork's (GFP_KERNEL). We write N, so every slab allocation under dup_mmap
  is a check. One check per kmem_cache_alloc/kmem_cache_alloc_bulk call (slab_pre_alloc_hook),
  independent of the slab's free-list state: deterministic.
- fail_page_alloc: left out of the count by default (ignore-gfp-wait = Y, min-order = 32,
  above any page order). `page_alloc=True` (FAULTS=slab,page, forkdiff run --page-faults)
  counts the child's page-table pages: min-order = 0 (page tables are order 0; the kernel's
  default 1 skips them), ignore-gfp-wait = N (GFP_PGTABLE_USER may sleep) and its own stack
  filter on copy_page_range (PAGE_FUNCTION), not dup_mmap: under dup_mmap new slab pages are
  page allocations too whenever a cache's free list runs dry (the guest's whole slab history
  decides that, not the scenario), and none of those is under copy_page_range, which only
  allocates page tables here (its other page allocations are for pinned or swapped pages,
  which the guest programs never have). Both attributes share the task's fail-nth, so the
  sweep's k numbering interleaves the slab checks under dup_mmap and the page checks under
  copy_page_range in the order fork() makes them (simulator/fork.py's trace).
  `slab=False` (FAULTS=page) keeps failslab out: require-start = require-end = 0, a range no
  stack entry is in, so no slab allocation counts (fail_stacktrace() is false).
  A kernel without the stack filter (6.1) counts every page allocation of the fork syscall
  instead (page_scope "fork"): ignore-gfp-highmem Y keeps the parent's own page faults out,
  every cache's min_partial is raised so that no empty slab is ever freed (and faultsweep
  warms the caches up), and FAULTS=page leaves slab out with the cache filter on and no
  cache flagged (the guest then boots without slub_debug=A).
- verbose = 0: no "FAULT_INJECTION: forcing a failure" report and stack dump per injected
  fault (thousands in a sweep, and slow on a serial console).
- Stack filter: require-start = address of dup_mmap in /proc/kallsyms, require-end = the next
  higher symbol address, stacktrace-depth = 32 (the maximum the kernel accepts,
  MAX_STACK_TRACE_DEPTH), reject range cleared. On by default (counts exactly the
  allocations made under dup_mmap); `stack_filter=False` restores the full range, so every
  check in the fork syscall counts.
- A kernel without the stack filter (x86-64 before 6.3: FAULT_INJECTION_STACKTRACE_FILTER
  depends on !X86_64 there) gets the cache filter on FORK_CACHES instead, so that fail-nth
  still counts only fork's own caches (but over the whole fork syscall, not only dup_mmap);
  where the caches' failslab flag is read-only too (6.1), every slab allocation of the fork
  syscall counts (as --no-stack-filter). The settings record what was used (stack_filter off,
  cache_filter set or empty), and compare treats such a sweep as the run it was.
- Cache filter (off by default; on with kmemleak and without a stack filter): failslab `cache-filter` = Y makes
  should_failslab() return before should_fail_ex() for every cache without SLAB_FAILSLAB, i.e.
  such allocations neither count nor fail, even under fail-nth. We set the flag
  (/sys/kernel/slab/<cache>/failslab = 1; refused for a merged cache, and the faults profile
  does not merge) on the caches dup_mmap allocates from (FORK_CACHES). Needed with kmemleak on:
  kmemleak_alloc() allocates its own metadata (kmemleak_object, from its own caches) inside
  every slab allocation, with dup_mmap on the stack, and those allocations pass failslab too
  (an injected failure there falls back to kmemleak's static pool). Without the filter the
  checks a fork makes depend on kmemleak (anon-touched-21: 92 become about 187).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Protocol

from ..errors import ForkdiffError
from ..prepare.kernel import failslab_attr_ro

DEBUGFS = "/sys/kernel/debug"
ULONG_MAX = 0xFFFF_FFFF_FFFF_FFFF
MAX_STACK_DEPTH = 32
PAGE_ALLOC_OFF_MIN_ORDER = 32
# where fail_page_alloc's checks count with page_alloc (FAULTS=...,page): the page tables
# copy_page_range() allocates for the child (mm/memory.c)
PAGE_FUNCTION = "copy_page_range"
FAULT_KINDS = ("slab", "page")
SLAB_SYSFS = "/sys/kernel/slab"
# The slab caches dup_mmap() allocates from (6.12): the new VMAs and their per-VMA locks, the
# maple tree's nodes, and anon_vma_fork()'s anon_vma and anon_vma_chain objects.
FORK_CACHES = ("maple_node", "vm_area_struct", "vma_lock", "anon_vma", "anon_vma_chain")


class _Result(Protocol):
    status: int
    stdout: str
    stderr: str


class Runner(Protocol):
    def run(self, cmd: str, timeout: float = ...) -> _Result: ...


@dataclass(frozen=True)
class FaultOptions:
    """What the user chooses (forkdiff run --no-stack-filter / --page-faults; --kmemleak sets
    cache_filter to FORK_CACHES)."""

    stack_filter: bool = True
    function: str = "dup_mmap"
    page_alloc: bool = False  # fail_page_alloc counts copy_page_range()'s page tables
    cache_filter: tuple[str, ...] = ()  # failslab counts only these caches (empty: all)
    slab: bool = True  # failslab counts (False: FAULTS=page, the page-table checks alone)

    @property
    def faults(self) -> tuple[str, ...]:
        """What fail-nth counts: FAULT_KINDS in order ("slab", "page")."""
        return tuple(k for k, on in (("slab", self.slab), ("page", self.page_alloc)) if on)


def parse_faults(text: str | None) -> tuple[bool, bool]:
    """FAULTS= / --faults: "slab" (the default), "page", or "slab,page" -> (slab, page)."""
    kinds = [k for k in (text or "slab").replace(",", " ").split() if k]
    bad = [k for k in kinds if k not in FAULT_KINDS]
    if bad or not kinds:
        raise ForkdiffError(f"FAULTS={text!r}: unknown fault kind {', '.join(bad) or '(none)'}",
                            "use slab, page or slab,page")
    return "slab" in kinds, "page" in kinds


@dataclass
class FaultSettings:
    """What was written into debugfs; put into every observation record."""

    stack_filter: bool
    function: str
    require_start: str
    require_end: str
    next_symbol: str
    stacktrace_depth: int
    attrs: dict[str, dict[str, str]] = field(default_factory=dict)
    cache_filter: list[str] = field(default_factory=list)  # caches whose failslab flag is 1
    faults: list[str] = field(default_factory=lambda: ["slab"])  # what fail-nth counts
    page_function: str = ""  # fail_page_alloc's stack filter (page_alloc): copy_page_range
    page_skipped: str = ""  # why page faults asked for were left out (a kernel without the filter)
    # where fail_page_alloc's checks come from when page faults count: "copy_page_range" (its
    # stack filter) or "fork" (a kernel without the filter: every page allocation of the fork
    # syscall, with new slab pages kept out by min_partial: FORK_MIN_PARTIAL)
    page_scope: str = ""
    min_partial: int = 0  # what /sys/kernel/slab/*/min_partial was raised to (0: untouched)

    def to_dict(self) -> dict:
        return asdict(self)


_SYM = re.compile(r"^([0-9a-f]+) ([A-Za-z]) (\S+)")


def symbol_range(kallsyms: str, function: str) -> tuple[int, int, str]:
    """[start, end) of `function` in /proc/kallsyms text: its address and the next higher
    symbol address. Accepts compiler-renamed copies (dup_mmap.isra.0, .constprop.0)."""
    syms: list[tuple[int, str]] = []
    start = None
    pat = re.compile(rf"^{re.escape(function)}(\.(isra|constprop|part)\.\d+)*$")
    for line in kallsyms.splitlines():
        m = _SYM.match(line)
        if not m:
            continue
        addr, kind, name = int(m.group(1), 16), m.group(2), m.group(3)
        syms.append((addr, name))
        if kind in "tT" and pat.match(name) and start is None:
            start = addr
    if start is None:
        raise ForkdiffError(
            f"function {function} is not in the guest's /proc/kallsyms (inlined, or kallsyms off)",
            "run with --no-stack-filter, or build the kernel with CONFIG_KALLSYMS")
    if start == 0:
        raise ForkdiffError("/proc/kallsyms shows zero addresses (kptr_restrict)",
                            "run the guest programs as root (the rootfs does)")
    higher = [(a, n) for a, n in syms if a > start]
    if not higher:
        raise ForkdiffError(f"no symbol after {function} in /proc/kallsyms",
                            "run with --no-stack-filter")
    end, nxt = min(higher)
    return start, end, nxt


def _attr_values(name: str, opts: FaultOptions, start: int, end: int,
                 page_range: tuple[int, int] | None = None) -> dict[str, str]:
    """The debugfs values of one fault attribute. [start, end) is failslab's stack range
    (dup_mmap; 0, 0 when slab faults are off: nothing counts); page_range fail_page_alloc's
    when page allocations count (copy_page_range)."""
    if name == "failslab" and not opts.slab:
        start, end = 0, 0
    if name == "fail_page_alloc" and opts.page_alloc and page_range is not None:
        start, end = page_range
    vals = {
        "probability": "0",
        "interval": "1",
        "space": "0",
        "verbose": "0",
        "task-filter": "N",
        "stacktrace-depth": str(MAX_STACK_DEPTH),
        "require-start": str(start),
        "require-end": str(end),
        "reject-start": "0",
        "reject-end": "0",
    }
    if name == "failslab":
        vals["ignore-gfp-wait"] = "N"
        # FAULTS=page without a stack filter: the cache filter on, with no cache counted
        vals["cache-filter"] = "Y" if opts.cache_filter or not (opts.slab or opts.stack_filter) else "N"
    if name == "fail_page_alloc":
        vals["ignore-gfp-wait"] = "N" if opts.page_alloc else "Y"
        vals["min-order"] = "0" if opts.page_alloc else str(PAGE_ALLOC_OFF_MIN_ORDER)
        if opts.page_alloc:
            vals["ignore-gfp-highmem"] = "N"  # x86-64 has no highmem: for the record
    return vals


def _run(g: Runner, cmd: str, what: str, timeout: float = 60) -> str:
    r = g.run(cmd, timeout=timeout)
    if r.status != 0:
        raise ForkdiffError(f"fault set-up: {what} failed in the guest: {r.stderr.strip() or r.stdout.strip()}",
                            "is this a 'faults' profile kernel (CONFIG_FAULT_INJECTION_DEBUG_FS)?")
    return r.stdout


def configure(g: Runner, opts: FaultOptions = FaultOptions()) -> FaultSettings:
    """Write the settings into the guest's debugfs, read them back, and return them."""
    listing = _run(g, f"ls -d {DEBUGFS}/*/probability {DEBUGFS}/*/require-start 2>/dev/null; true",
                   "listing fault attributes").split()
    dirs = sorted({p.rsplit("/", 2)[1] for p in listing if p.endswith("/probability")})
    if "failslab" not in dirs:
        raise ForkdiffError("the guest kernel has no failslab in debugfs",
                            "use a 'faults' profile kernel (CONFIG_FAILSLAB, CONFIG_FAULT_INJECTION_DEBUG_FS)")
    has_filter = f"{DEBUGFS}/failslab/require-start" in listing
    page_skipped = ""
    min_partial = 0
    if opts.page_alloc and not has_filter:
        # without a stack filter every page allocation of the fork syscall counts: the child's
        # kernel stack, its pgd, its page tables (all modelled: simulator/fork.py
        # FORK_PREFIX_PAGES) and new slab pages whenever a cache has no free object left. The
        # last are kept out: min_partial raised on every cache, so that no empty slab is ever
        # discarded (mm/slub.c: an empty slab is freed only while the node has min_partial
        # partial slabs), and faultsweep's warm-up forks at the same layout leave every cache
        # the free objects a fork takes (faultsweep sees this set-up in debugfs: it flushes
        # the caches instead of shrinking them, which would free every empty slab).
        min_partial = _raise_min_partial(g)
    if opts.stack_filter and not has_filter:  # no stack filter in this kernel: fork's caches only
        caches = opts.cache_filter or (FORK_CACHES if _failslab_flag_writable(g) or _failslab_flag_set(g)
                                       else ())
        if not opts.slab:  # FAULTS=page: failslab's cache filter with no cache flagged
            if _failslab_flag_set(g):
                raise ForkdiffError("FAULTS=page: fork's caches have the failslab flag from boot, "
                                    "so failslab would count them", "boot without slub_debug=A")
            caches = ()
        opts = replace(opts, stack_filter=False, cache_filter=caches)
    if opts.stack_filter:
        fn = re.escape(opts.function)
        text = _run(g, f"grep -E -A8 ' [tT] {fn}(\\.[a-z]+\\.[0-9]+)*$' /proc/kallsyms",
                    f"looking up {opts.function} in /proc/kallsyms")
        start, end, nxt = symbol_range(text, opts.function)
    else:
        start, end, nxt = 0, ULONG_MAX, ""
    page_range = None
    if opts.page_alloc and has_filter:
        fn = re.escape(PAGE_FUNCTION)
        text = _run(g, f"grep -E -A8 ' [tT] {fn}(\\.[a-z]+\\.[0-9]+)*$' /proc/kallsyms",
                    f"looking up {PAGE_FUNCTION} in /proc/kallsyms")
        ps, pe, _ = symbol_range(text, PAGE_FUNCTION)
        page_range = (ps, pe)
    script = []
    attrs: dict[str, dict[str, str]] = {}
    for d in dirs:
        vals = _attr_values(d, opts, start, end, page_range)
        if d == "fail_page_alloc" and opts.page_alloc and not has_filter:
            # __GFP_HIGHMEM allocations stay out (the default): the parent's own page faults
            # (GFP_HIGHUSER_MOVABLE: the COW of its stack right after fork() returns, before
            # fail-nth is read back) would be checks too; fork's page allocations (stack,
            # pgd, page tables, slab pages) have no __GFP_HIGHMEM
            vals["ignore-gfp-highmem"] = "Y"
        if not has_filter:
            for k in ("stacktrace-depth", "require-start", "require-end", "reject-start", "reject-end"):
                vals.pop(k)
        attrs[d] = vals
        script += [f"echo {v} > {DEBUGFS}/{d}/{k}" for k, v in vals.items()]
    _run(g, " && ".join(["set -e"] + script), "writing fault attributes")
    # read back what the kernel kept (e.g. stacktrace-depth is clamped to 32)
    back = _run(g, " ; ".join(f"echo {d}/{k}=$(cat {DEBUGFS}/{d}/{k})"
                             for d, vals in attrs.items() for k in vals), "reading fault attributes back")
    for line in back.splitlines():
        key, _, val = line.partition("=")
        d, _, k = key.partition("/")
        if d in attrs and k in attrs[d]:
            attrs[d][k] = val.strip()
    for d, vals in attrs.items():
        if vals.get("probability") != "0" or (d == "failslab" and (
                vals.get("ignore-gfp-wait") != "N"
                or vals.get("cache-filter") != _attr_values(d, opts, 0, 0)["cache-filter"])) or (
                d == "fail_page_alloc" and opts.page_alloc and (
                    vals.get("ignore-gfp-wait") != "N" or vals.get("min-order") != "0")):
            raise ForkdiffError(f"fault set-up: {DEBUGFS}/{d} did not keep the written values: {vals}",
                                "check the guest kernel's fault-injection options")
    return FaultSettings(stack_filter=opts.stack_filter, function=opts.function if opts.stack_filter else "",
                         require_start=hex(start), require_end=hex(end), next_symbol=nxt,
                         stacktrace_depth=MAX_STACK_DEPTH, attrs=attrs,
                         cache_filter=_flag_caches(g, opts.cache_filter), faults=list(opts.faults),
                         page_function=PAGE_FUNCTION if page_range else "", page_skipped=page_skipped,
                         page_scope=("" if not opts.page_alloc else PAGE_FUNCTION if page_range else "fork"),
                         min_partial=min_partial)


def boot_flags(kernel, slab: bool = True) -> dict[str, str]:
    """The slub_debug flags the faults suite's guest must boot with, per cache (composed into
    the one slub_debug= word by orchestrator/run/slubdebug.py param()). A kernel without the
    stack filter is swept with failslab's cache filter on FORK_CACHES (configure()); where the
    kernel's /sys/kernel/slab/<cache>/failslab is read-only (6.1's mm/slub.c:
    SLAB_ATTR_RO(failslab)) the SLAB_FAILSLAB flag can only be given at boot: 'A' on each of
    FORK_CACHES ('A' sets SLAB_FAILSLAB alone, which is no SLAB_DEBUG_FLAGS flag: the
    allocation paths stay the same). {} for every other kernel (the flag, when needed, is
    written at run time; and with slab=False, FAULTS=page: failslab counts no cache)."""
    if not slab:
        return {}
    config = getattr(kernel, "config", None)
    build_dir = getattr(kernel, "build_dir", None)
    if config is None or build_dir is None or not Path(config).is_file():
        return {}
    if "CONFIG_FAULT_INJECTION_STACKTRACE_FILTER=y" in Path(config).read_text(errors="replace"):
        return {}
    recorded = ((getattr(kernel, "manifest", None) or {}).get("kernel_facts") or {}).get("failslab_attr_ro")
    if recorded is None:  # a manifest of an older forkdiff: read the source copy
        recorded = failslab_attr_ro(Path(build_dir).parent)
    return dict.fromkeys(FORK_CACHES, "A") if recorded else {}


# min_partial for every slab cache when page allocations count without a stack filter: far
# above the partial slabs any cache holds (anon-touched-3221's fork takes some hundred slabs)
FORK_MIN_PARTIAL = 1_000_000


def _raise_min_partial(g: Runner) -> int:
    """Raise /sys/kernel/slab/*/min_partial to FORK_MIN_PARTIAL (mm/slub.c min_partial_store:
    no upper bound) and check that fork's caches kept it."""
    _run(g, f"for f in {SLAB_SYSFS}/*/min_partial; do echo {FORK_MIN_PARTIAL} > $f 2>/dev/null; done; true",
         "raising min_partial")
    back = _run(g, " && ".join(["set -e"] + [f"if [ -d {SLAB_SYSFS}/{c} ]; then echo {c}=$(cat {SLAB_SYSFS}/{c}/min_partial); fi"
                                             for c in FORK_CACHES]), "reading min_partial back")
    low = [ln for ln in back.splitlines() if "=" in ln and ln.partition("=")[2].strip() != str(FORK_MIN_PARTIAL)]
    if low:
        raise ForkdiffError(f"fault set-up: min_partial did not take: {', '.join(low)}",
                            "use FAULTS=slab on this kernel")
    return FORK_MIN_PARTIAL


def _failslab_flag_writable(g: Runner) -> bool:
    """Whether /sys/kernel/slab/<cache>/failslab can be written (read-only before 6.7-ish,
    e.g. on 6.1)."""
    out = g.run(f"ls -l {SLAB_SYSFS}/{FORK_CACHES[0]}/failslab 2>/dev/null; true", timeout=30).stdout
    return out.strip().startswith("-rw")


def _failslab_flag_set(g: Runner) -> bool:
    """Whether fork's first cache already has the failslab flag (given at boot where it is
    read-only: boot_flags())."""
    f = f"{SLAB_SYSFS}/{FORK_CACHES[0]}/failslab"
    out = g.run(f"echo flag=$(cat {f})", timeout=30).stdout
    return out.strip() == "flag=1"


def _flag_caches(g: Runner, caches: tuple[str, ...]) -> list[str]:
    """Set SLAB_FAILSLAB on each cache of `caches` the kernel has (a cache it lacks, e.g.
    vma_lock without per-VMA locks, is one fork cannot allocate from) and return those whose
    flag reads back 1. The failslab cache-filter written by configure() makes it count."""
    if not caches:
        return []
    # a read-only flag (6.1) was set at boot (boot_flags()): the write fails, the read counts
    script = [f"if [ -d {SLAB_SYSFS}/{c} ]; then {{ echo 1 > {SLAB_SYSFS}/{c}/failslab; }} "
              f"2>/dev/null || true; echo {c}=$(cat {SLAB_SYSFS}/{c}/failslab); fi" for c in caches]
    back = _run(g, " && ".join(["set -e"] + script), "setting the failslab flag of fork's caches")
    flagged = [c for c, _, v in (ln.partition("=") for ln in back.splitlines()) if v.strip() == "1"]
    if not flagged:
        raise ForkdiffError(f"fault set-up: none of the caches {', '.join(caches)} took the failslab flag",
                            "slab merging must be off (the faults profile); check /sys/kernel/slab")
    return flagged
