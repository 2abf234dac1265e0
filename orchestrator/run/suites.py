"""Suites: run the guest programs on each kernel variant and append what they report to
<out>/observations.jsonl (orchestrator.results.observations), one record per measurement. What
each suite is (program, profile, scenarios, final record, jobs) is its object in
orchestrator/suite_defs/; this module runs any of them.

Each suite boots one guest per variant (baseline, patched), runs its jobs in order and writes
each record as soon as the job's output is parsed. With resume, a job whose final record is
already in the file is not run again, and no key is written twice.
"""

from __future__ import annotations

import contextlib
import json
import re
import shlex
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from simulator.fork import KFREE_DRAIN_MS, VARIANTS
from simulator.scenario import Scenario, from_dict

from ..errors import ForkdiffError
from ..prepare import treefacts
from ..prepare.kconfig import run_record
from ..prepare.variants import KERNELS
from ..results.observations import ObservationLog, record_key
from ..suite_defs import get
from ..suite_defs.base import Job
from ..suite_defs.base import load_scenarios as load_scenarios  # the commands' and Dask's
from ..suite_defs.spawn import SPAWN_VMAS
from ..vm.guest_api import GuestLike
from ..vm.guest_pool import GuestPool
from . import faultsetup, kmemleak, slubdebug
from . import observers as obs_mod
from .suite_parse import ParsedRecord, parse_output


def profile_of(suite: str, observer_list: tuple[str, ...] = (), perf: bool = False,
               debug_vm: bool = False) -> str:
    """The kernel profile a suite boots (orchestrator/suite_defs: PERF_KERNELS= and DEBUG_VM=
    pick the perf kernels for spawn and the debug kernels for the exact suites; OBSERVERS=
    changes none: swap and zram are in the faults profile)."""
    return get(suite).profile_for(observer_list, perf=perf, debug_vm=debug_vm)


@dataclass
class RunOptions:
    suite: str
    out: Path
    variants: tuple[str, ...] = VARIANTS
    profile: str | None = None
    scenarios: list[Scenario] | None = None  # maps/faults/counts; None: the suite's own
    vmas: tuple[int, ...] = SPAWN_VMAS  # spawn
    duration: float = 10.0  # spawn: seconds of guest (virtual) time per measurement
    repeats: int | None = None  # spawn: runs per count (1); counts: forks per scenario (15)
    max_k: int = 20000  # faults: bound of the sweep
    count_only_above: int = 1000  # faults: layouts with more VMAs only count the checks
    resume: bool = False
    calibrate: bool = True  # spawn: also run the calibration layouts on the baseline kernel
    # spawn: each kernel's cached instruction profile (orchestrator.run.insnprofile: the plugin
    # over the fixed calibration plan, measured once per kernel) instead of per-run calibration
    # layouts; INSN_PROFILE=1 turns it on. Off by default: at 21 VMAs a run's rate differs from
    # the profile's by up to 2% (guest history: the profile's 21-VMA job runs after the
    # calibration layouts), more than the band allows (docs/predictions.md)
    insn_profile: bool = False  # the commands read INSN_PROFILE= (orchestrator/cli_env.py)
    calibrate_on: str = "baseline"  # ... on this kernel: the baseline, or a run's only kernel
    spawn_timing: str = "icount"  # spawn: "icount" (virtual time) or "realtime" (KVM only)
    tree: object = None  # kernel tree: a TreeSource (a run's, resolved once), a path or spec; None: Debian's 6.12
    patches: tuple[Path, ...] = ()  # extra patches for the patched kernel (the command reads PATCHES=)
    icount: bool | None = None  # None: virtual time (-icount), see icount_used
    memory_mb: int = 1024
    fault: faultsetup.FaultOptions = field(default_factory=faultsetup.FaultOptions)
    kmemleak: bool = False  # faults: boot with kmemleak=on, count fork's caches only, scan after each sweep
    # faults: tasks beside each sweep (OBSERVERS=; orchestrator/run/observers.py), seeded
    observers: tuple[str, ...] = ()
    observer_seed: int = obs_mod.DEFAULT_SEED
    perf_kernels: bool = False  # spawn on the perf kernels (PERF_KERNELS=1)
    debug_vm: bool = False  # maps/faults/counts on the debug kernels (DEBUG_VM=1)
    run_id: str = field(default_factory=lambda: time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6])
    log: Callable[[str], None] = field(default=lambda msg: print(msg, file=sys.stderr, flush=True))

    @property
    def profile_used(self) -> str:
        return self.profile or profile_of(self.suite, self.observers, self.perf_kernels, self.debug_vm)

    @property
    def icount_used(self) -> bool:
        """Deterministic virtual time (QEMU -icount) unless asked otherwise: timings need it,
        and so does the faults suite's leak check, which waits a bounded time for RCU-deferred
        frees: in virtual time that bound does not shrink when the host is busy (in real time,
        a guest starved by a loaded host once took longer than 500 ms to run its RCU callbacks)."""
        return True if self.icount is None else self.icount

    @property
    def leak_wait_ms(self) -> int:
        """faultsweep --leak-wait-ms: how long a fork's frees may take to settle before what
        is left counts as leaked (only a leaking fork waits this long)."""
        return 500 if self.icount_used else 5000

    @property
    def settle_ms(self) -> int:
        """faultsweep --settle-ms: how long the sweep's start and end may wait for pending frees
        to land (only a sweep that leaves something waits this long). Longer than kfree_rcu's
        batch drain (simulator.fork.KFREE_DRAIN_MS) plus grace periods, so a node the model
        predicts pending in those batches at some k (7.x) is freed by the sweep's end, and the
        sweep's net is compared exactly (analysis/rules.py)."""
        return KFREE_DRAIN_MS + (2000 if self.icount_used else 5000)

    @property
    def scans_leaks(self) -> bool:
        return self.kmemleak and get(self.suite).injects_faults

    @property
    def final(self) -> str:
        return "kmemleak" if self.scans_leaks else get(self.suite).final

    @property
    def page_tables(self) -> bool:
        """faultsweep --page-tables: fail_page_alloc counts the child's page tables too."""
        return self.fault.page_alloc

    @property
    def observer_args(self) -> tuple[str, ...]:
        """faultsweep's options that start the observers beside the sweep (none: no observers)."""
        return obs_mod.sweep_args(self.observers, self.observer_seed)

    @property
    def fault_options(self) -> faultsetup.FaultOptions:
        """With kmemleak, failslab counts fork's own caches only (faultsetup: kmemleak's
        metadata allocations would otherwise be checks too)."""
        if self.scans_leaks and not self.fault.cache_filter:
            return replace(self.fault, cache_filter=faultsetup.FORK_CACHES)
        return self.fault


@dataclass
class SuiteResult:
    records: int = 0
    skipped_jobs: int = 0
    errors: list[str] = field(default_factory=list)
    wall_seconds: dict[str, float] = field(default_factory=dict)
    lost_jobs: list[Job] = field(default_factory=list)  # jobs during which the guest crashed or hung
    lost_steps: list[int | None] = field(default_factory=list)  # per lost job: sweep step k, if any
    restarts: int = 0  # guests booted again after a crash or hang to go on with the suite


SPAWN_TIMINGS = ("icount", "realtime")


def resolve_icount(opts: RunOptions, kvm_usable: Callable[[], bool]) -> RunOptions:
    """The suite's options with `icount` decided, unless asked for explicitly:
    - spawn: deterministic virtual time (TCG -icount) by default; SPAWN_TIMING=realtime times
      forks in real time under KVM instead (noisy: REALTIME_REPEATS runs per count and Welch's
      test), and is an error where KVM does not work;
    - maps, faults, counts: exactness needs no virtual time: under KVM when the probe says it
      works (real time; the leak check then waits up to 5 s for RCU frees), else under TCG with
      -icount, whose virtual time keeps the leak check's bound independent of the host's load.
    kvm_usable is called only when the answer matters (orchestrator.vm.kvm.probe)."""
    if opts.spawn_timing not in SPAWN_TIMINGS:
        raise ForkdiffError(f"unknown spawn timing {opts.spawn_timing!r}",
                            f"SPAWN_TIMING is one of: {', '.join(SPAWN_TIMINGS)}")
    if opts.icount is not None:
        return opts
    if opts.suite == "spawn":
        if opts.spawn_timing == "icount":
            return replace(opts, icount=True)
        if not kvm_usable():
            raise ForkdiffError("SPAWN_TIMING=realtime needs KVM, and the KVM probe says it does "
                                "not work here (real time under TCG measures the emulator)",
                                "use SPAWN_TIMING=icount (the default)")
        return replace(opts, icount=False)
    return replace(opts, icount=not kvm_usable())


def plan(opts: RunOptions) -> list[Job]:
    """The jobs of a suite, in order (the same for every variant): the suite object's plan."""
    return get(opts.suite).plan(opts)


def _record(opts: RunOptions, variant: str, job: Job, pr: ParsedRecord, env: dict,
            source: str = "guest") -> dict:
    repeat = pr.repeat if pr.repeat is not None else job.repeat
    if pr.measurement == "error":  # errors of every run are kept: the key names run and source
        repeat = f"{opts.run_id}:{source}" + ("" if repeat is None else f":{repeat}")
    return {
        "key": record_key(opts.suite, variant, opts.profile_used, job.scenario, pr.measurement, repeat),
        "run_id": opts.run_id,
        "suite": opts.suite,
        "variant": variant,
        "profile": opts.profile_used,
        "scenario": job.scenario_dict,
        "measurement": pr.measurement,
        "repeat": repeat,
        "value": pr.value,
        "values": (pr.values if job.before_crash is None or pr.measurement != "sweep_end"
                   else {**pr.values, "before_crash": job.before_crash}),
        "program": job.program,
        "command": job.command,
        **env,
        "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds"),
    }


def _error_record(opts: RunOptions, variant: str, job: Job, env: dict, message: str,
                  values: dict, source: str) -> dict:
    pr = ParsedRecord("error", None, message, {"message": message, **values})
    return _record(opts, variant, job, pr, env, source)


def pending(opts: RunOptions, variant: str, jobs: list[Job], log: ObservationLog) -> list[Job]:
    """Jobs whose final record is not in the file yet (all of them unless resuming)."""
    final = opts.final
    return [j for j in jobs
            if not (opts.resume and log.has(record_key(opts.suite, variant, opts.profile_used,
                                                       j.scenario, final, j.repeat)))]


_SWEEP_STEP = re.compile(r"forkdiff-sweep: k=(\d+)")


def sweep_step(console_lines: list[str]) -> int | None:
    """The last step faultsweep --kmsg announced on the console (None: not a sweep)."""
    for line in reversed(console_lines):
        m = _SWEEP_STEP.search(line)
        if m:
            return int(m.group(1))
    return None


def _console_excerpt(err: Exception, watcher) -> str:
    """The console around the crash line (GuestCrashed), else the last lines the guest printed."""
    text = getattr(err, "excerpt", "") or getattr(err, "console_tail", "")
    if not text and watcher is not None:
        text = watcher.tail()
    return text[-8000:]


MAX_SKIPPED_STEPS = 3  # a sweep that kills the kernel at more steps than this is given up


def sweep_without_step(job: Job, k: int | None) -> Job | None:
    """The same sweep told to skip step k as well (faultsweep --skip), or None when the job
    is not a sweep, k is unknown, it has skipped MAX_SKIPPED_STEPS steps already, or it is the
    last run of a given-up sweep (sweep_before_first_crash: a crash in it is recorded only)."""
    if job.program != "faultsweep" or k is None or job.before_crash is not None \
            or job.args.count("--skip") >= MAX_SKIPPED_STEPS:
        return None
    return replace(job, args=("--skip", str(k), *job.args))


def sweep_before_first_crash(job: Job, k: int | None) -> Job | None:
    """A sweep given up (it killed the kernel at MAX_SKIPPED_STEPS + 1 steps) has kept none of
    its records: the same sweep once more, stopped by --max-k before the first step that killed
    the kernel, so that the steps before it are recorded (a bug that leaks at early steps and
    crashes at later ones shows both), once per sweep. None when the job is not a sweep given
    up, k is unknown, it is that last run already, or no step comes before the first crash."""
    if job.program != "faultsweep" or k is None or job.before_crash is not None \
            or job.args.count("--skip") < MAX_SKIPPED_STEPS:
        return None
    args, kept = list(job.args), []
    skipped = [int(args[i + 1]) for i, a in enumerate(args[:-1]) if a == "--skip"]
    first = min([*skipped, k])
    k_from = int(args[args.index("--k-from") + 1]) if "--k-from" in args else 1
    if first - 1 < k_from:
        return None
    i = 0
    while i < len(args):
        if args[i] == "--skip":
            i += 2
            continue
        kept.append(args[i])
        i += 1
    if "--max-k" in kept:
        kept[kept.index("--max-k") + 1] = str(first - 1)
    else:
        kept += ["--max-k", str(first - 1)]
    return replace(job, args=tuple(kept), before_crash=first)


def kernel_config(g) -> dict | None:
    """The booted kernel's options that decide dup_mmap()'s allocations (kconfig.run_record),
    from the .config its build kept; None when the guest has no built kernel behind it."""
    path = getattr(getattr(g, "kernel", None), "config", None)
    if path is None:
        return None
    if not Path(path).is_file():
        raise ForkdiffError(f"the booted kernel's .config {path} is missing: the run could not "
                            "record what the simulator must model",
                            "build the kernel again ('forkdiff kernel build')")
    return run_record(path)


def kernel_facts(g) -> dict | None:
    """What the booted kernel's source says (orchestrator/prepare/treefacts.py): from its build
    manifest, or read from the source copy it was built from (a manifest made before forkdiff
    recorded them); None when the guest has no built kernel behind it."""
    kernel = getattr(g, "kernel", None)
    return None if kernel is None else facts_of_kernel(kernel)


def facts_of_kernel(kernel) -> dict:
    """kernel_facts() of a built kernel (orchestrator.prepare.kernel.BuiltKernel)."""
    facts = (getattr(kernel, "manifest", None) or {}).get("kernel_facts")
    stale = facts is None or not set(treefacts.FACT_KEYS) <= set(facts)  # an older forkdiff's
    build_dir = getattr(kernel, "build_dir", None)
    if stale and build_dir is not None:
        facts = treefacts.detect(Path(build_dir).parent)
    if facts is not None and "vdso_pages" not in facts and build_dir is not None:
        # what the build made of the source (recorded in the manifest since forkdiff does)
        pages = treefacts.vdso_pages_of_build(build_dir)
        facts = dict(facts) | ({"vdso_pages": pages} if pages else {})
    return facts


def run_on_guest(opts: RunOptions, variant: str, g: GuestLike, jobs: list[Job], log: ObservationLog,
                 result: SuiteResult) -> bool:
    """Run jobs on a booted guest (orchestrator.vm.guest.Guest) of `variant`. Returns False when the
    guest crashed or hung (the remaining jobs were not run)."""
    from ..vm.guest import GuestCrashed, GuestHung, GuestLost

    t0 = time.monotonic()
    release = g.run("uname -r", timeout=30).stdout.strip()
    settings = faultsetup.configure(g, opts.fault_options).to_dict() if get(opts.suite).injects_faults else None
    if opts.scans_leaks:
        kmemleak.setup(g)
    env = {"kernel_release": release, "qemu_mode": g.qemu_mode, "icount": opts.icount_used,
           "kernel_config": kernel_config(g), "kernel_facts": kernel_facts(g), "fault_settings": settings,
           "kmemleak": opts.scans_leaks,
           "slab_debug": (slubdebug.read_back(g, faultsetup.FORK_CACHES)
                          if get(opts.suite).reads_slab_counters else None)}
    alive = True
    for job in jobs:
        t = time.monotonic()
        watcher = getattr(g, "watcher", None)  # the console (orchestrator.vm.guest.ConsoleWatcher)
        mark = watcher.mark() if watcher is not None else 0
        try:
            for remote, text in job.uploads:
                push(g, remote, text)
            r = g.run(job.command, timeout=job.timeout)
        except (GuestCrashed, GuestHung, GuestLost) as err:
            _guest_lost(opts, variant, g, job, env, err, mark, log, result)
            alive = False
            break
        parsed = parse_output(job.program, r.stdout)
        if opts.observers and job.program == "faultsweep":
            parsed.records = obs_mod.annotate(parsed.records)
        n = 0
        for pr in parsed.records:
            rec = _record(opts, variant, job, pr, env)
            if opts.resume and log.has(rec["key"]):
                continue
            log.append(rec)
            n += 1
            if pr.measurement == "error":
                result.errors.append(f"{variant} {job.scenario}: {pr.value}")
        if r.status != 0 or parsed.bad_lines:
            msg = (f"{job.program} exited with status {r.status}" if r.status != 0
                   else f"{job.program} printed {parsed.bad_lines} lines that are not JSON")
            log.append(_error_record(opts, variant, job, env, msg,
                                     {"status": r.status, "stderr": r.stderr[-4000:]}, "exit"))
            n += 1
            result.errors.append(f"{variant} {job.scenario}: {msg}")
        if opts.scans_leaks and job.program == "faultsweep":
            mark = watcher.mark() if watcher is not None else 0
            try:
                n += _scan_leaks(opts, variant, g, job, env, log, result)
            except (GuestCrashed, GuestHung, GuestLost) as err:
                result.records += n
                _guest_lost(opts, variant, g, job, env, err, mark, log, result, "during the kmemleak scan")
                alive = False
                break
        result.records += n
        rep = f" #{job.repeat}" if job.repeat is not None else ""
        opts.log(f"[{opts.suite}] {variant}: {job.scenario}{rep}: {n} records in {time.monotonic() - t:.1f} s"
                 + ("" if r.status == 0 else f" (status {r.status})"))
    result.wall_seconds[variant] = result.wall_seconds.get(variant, 0.0) + time.monotonic() - t0
    return alive


def push(g: GuestLike, remote: str, text: str) -> None:
    """Put a file into the guest: over SFTP where the guest has it (orchestrator.vm.guest.Guest
    .put), else through a shell's stdin."""
    put = getattr(g, "put", None)
    if put is not None:
        import tempfile

        with tempfile.NamedTemporaryFile("w", suffix=".list", delete=False) as f:
            f.write(text)
        try:
            put(f.name, remote, timeout=60 + len(text) / 100_000)
        finally:
            Path(f.name).unlink()
        return
    r = g.run(f"cat > {shlex.quote(remote)}", timeout=60, stdin=text.encode())
    if r.status != 0:
        raise ForkdiffError(f"could not write {remote} in the guest: {r.stderr.strip()[-400:]}",
                            "check the guest's /tmp")


def _guest_lost(opts: RunOptions, variant: str, g: GuestLike, job: Job, env: dict, err: ForkdiffError, mark: int,
                log: ObservationLog, result: SuiteResult, during: str = "") -> None:
    """Record a guest that crashed or hung during a job (or the job's leak scan, `during`),
    as an error record naming the sweep step it died in, if any; re-raise when QEMU was
    killed from outside (by us on SIGINT/SIGTERM, or by the user)."""
    from ..vm.guest import GuestCrashed, GuestLost

    if isinstance(err, GuestLost) and (err.qemu_status is None or err.qemu_status < 0):
        raise err
    watcher = getattr(g, "watcher", None)
    values = {"kind": type(err).__name__, "console_log": str(g.console_log),
              "console_excerpt": _console_excerpt(err, watcher)}
    if isinstance(err, GuestCrashed):
        values["crash"] = err.kind  # the crash table's kind: panic, soft-lockup, ...
    seen = ""
    if opts.observers and job.program == "faultsweep":
        # which observer's task the report names (obs-<name>), or that they were running
        report = values["console_excerpt"]
        if watcher is not None and "Comm:" not in report:
            # the report's task line may follow the crash line by a moment on the console
            time.sleep(2)
            report = "\n".join(watcher.lines_since(mark))
            if "Comm:" in report:
                values["console_excerpt"] = report[-8000:]
        values["observers"] = list(opts.observers)
        values["observer"] = obs_mod.crash_observer(report, opts.observers)
        seen = obs_mod.crash_words(report, opts.observers)
    k = sweep_step(watcher.lines_since(mark, before_crash=True)) if watcher is not None else None
    message = err.one_line()
    if during:
        message = f"{during}: {message}"
    if k is not None:  # a fault sweep: the step it died in, from its /dev/kmsg lines
        values["k"] = k
        message = f"during sweep step k={k}{' ' + seen if seen else ''}: {message}"
    elif seen:
        message = f"{seen}: {message}"
    log.append(_error_record(opts, variant, job, env, message, values,
                             "vm" if k is None else f"vm:k={k}"))
    result.records += 1
    result.errors.append(f"{variant} {job.scenario}: {err.cause.splitlines()[0]}")
    result.lost_jobs.append(job)
    result.lost_steps.append(k)
    opts.log(f"[{opts.suite}] {variant}: {job.scenario}: {type(err).__name__}; guest lost "
             f"(console: {g.console_log})")


def _scan_leaks(opts: RunOptions, variant: str, g: GuestLike, job: Job, env: dict, log: ObservationLog,
                result: SuiteResult) -> int:
    """The job's kmemleak scan (orchestrator.run.kmemleak) as a `kmemleak` record (value: the
    number of unreferenced objects; 0 = no report), or an error record when kmemleak refuses.
    Returns the number of records written."""
    try:
        found = kmemleak.scan(g)
    except ForkdiffError as err:
        log.append(_error_record(opts, variant, job, env, err.one_line(), {}, "kmemleak"))
        result.errors.append(f"{variant} {job.scenario}: {err.cause}")
        return 1
    rec = _record(opts, variant, job, ParsedRecord("kmemleak", None, len(found.objects), found.values()), env)
    if opts.resume and log.has(rec["key"]):
        return 0
    log.append(rec)
    if found.objects:
        opts.log(f"[{opts.suite}] {variant}: {job.scenario}: kmemleak: {len(found.objects)} unreferenced "
                 f"objects:\n{kmemleak.summary(found.objects)}")
    return 1


def boot_slub_debug(suite: str, kernel, slab_faults: bool = True) -> str:
    """The slub_debug= word a guest of `kernel` running `suite` boots with
    (orchestrator.run.slubdebug): failslab's flag for a faults sweep where it is read-only at
    run time, and exact bulk counts for the suites that read the slab counters, where the
    kernel's SLUB_STATS miss bulk objects; "" for the rest (6.12, 7.2, perf kernels)."""
    kind = get(suite)
    if not kind.reads_slab_counters:
        return ""
    return slubdebug.param(faultsetup.boot_flags(kernel, slab_faults) if kind.injects_faults else {},
                           slubdebug.kernel_stats_flags(kernel, facts_of_kernel(kernel)))


def uses_insn_profile(opts: RunOptions) -> bool:
    """spawn under -icount with INSN_PROFILE on (the default): the kernels' cached instruction
    profiles judge the timings, and no calibration layouts run in the run itself."""
    return opts.suite == "spawn" and opts.insn_profile and opts.icount_used


def store_insn_profile(opts: RunOptions, variant: str, kernel) -> None:
    """<out>/insn-profile/<variant>.json: the kernel's cached instruction profile (measured
    with the plugin in a guest of its own the first time a kernel is used; then a cache hit)."""
    from .insnprofile import cached_profile

    dest = opts.out / "insn-profile" / f"{variant}.json"
    dest.parent.mkdir(parents=True, exist_ok=True)
    if getattr(kernel, "made_of", "") == "the tree + PATCHES":
        # never fitted on (orchestrator.analysis.insn_rows.fitted_on: the reference kernel's
        # model predicts it, or its rows are informational): not profiled
        dest.write_text(json.dumps({"variant": variant, "release": kernel.release,
                                    "made_of": kernel.made_of, "points": [],
                                    "not_profiled": "a tree + PATCHES kernel is predicted by "
                                    "its reference kernel's model"}) + "\n")
        return
    prof = cached_profile(kernel, log=opts.log)
    dest.write_text(json.dumps(prof) + "\n")
    opts.log(f"[spawn] {variant}: instruction profile {prof['key']} (plugin run "
             f"{prof['wall']['total_s']:.0f} s when measured) -> {dest}")


def run_variant(opts: RunOptions, variant: str, jobs: list[Job], log: ObservationLog,
                result: SuiteResult, pool: GuestPool | None = None) -> None:
    """Run the pending jobs on a guest of the variant's kernel (profile of the suite): the
    pool's live guest of that kernel, or a freshly booted one. Without a pool, the guest is
    booted for this call and stopped at its end."""
    from ..prepare.kconfig_needs import check_guest
    from ..prepare.kernel import build_kernel
    from ..prepare.kernel_records import record_kernel
    from ..prepare.rootfs import build_rootfs

    todo = pending(opts, variant, jobs, log)
    result.skipped_jobs += len(jobs) - len(todo)
    profiled = not uses_insn_profile(opts) or (opts.out / "insn-profile" / f"{variant}.json").is_file()
    if not todo and profiled:
        opts.log(f"[{opts.suite}] {variant}/{opts.profile_used}: all {len(jobs)} jobs already recorded")
        return
    kernel = build_kernel(variant, opts.profile_used, tree=opts.tree, patches=opts.patches)
    if not profiled:
        store_insn_profile(opts, variant, kernel)
    if not todo:
        return
    record_kernel(opts.out, kernel)  # <out>/kernels/: what the observations were made on
    rootfs = build_rootfs()
    append = " ".join(p for p in (kmemleak.BOOT_PARAM if opts.scans_leaks else "",
                                  boot_slub_debug(opts.suite, kernel, opts.fault.slab)) if p)
    with contextlib.ExitStack() as stack:
        if pool is None:
            pool = stack.enter_context(GuestPool())
        own_guest = get(opts.suite).fresh_guest  # spawn: not a guest another suite used
        while todo:
            g, fresh = pool.get(kernel, rootfs, icount=opts.icount_used, memory_mb=opts.memory_mb,
                                extra_append=append, fresh=own_guest)
            own_guest = False  # after a crash the loop boots anew anyway
            opts.log(f"[{opts.suite}] {variant}/{opts.profile_used}: "
                     + (f"booted ({g.qemu_mode}) in {g.boot_seconds:.0f} s" if fresh
                        else f"going on with the running guest ({g.qemu_mode})"))
            if fresh:  # options this tree's Kconfig no longer defines: is their need met?
                check_guest(kernel.manifest.get("kconfig_substitutes"),
                            lambda cmd, g=g: _status(g.run(cmd, timeout=30)), opts.log,
                            f"[{opts.suite}] {variant}/{opts.profile_used}")
            if run_on_guest(opts, variant, g, todo, log, result):
                return
            pool.drop(g)
            # The guest crashed or hung during a job (recorded as an error record): boot a fresh
            # guest and go on with the jobs after it; a sweep that died at step k runs again
            # without k first, so that its other steps are recorded too.
            lost = result.lost_jobs[-1]
            todo = todo[todo.index(lost) + 1:]
            again = sweep_without_step(lost, result.lost_steps[-1])
            if again is not None:
                todo.insert(0, again)
                opts.log(f"[{opts.suite}] {variant}: {lost.scenario}: running the sweep again "
                         f"without step k={result.lost_steps[-1]}")
            elif (again := sweep_before_first_crash(lost, result.lost_steps[-1])) is not None:
                todo.insert(0, again)
                opts.log(f"[{opts.suite}] {variant}: {lost.scenario}: sweep given up after "
                         f"{MAX_SKIPPED_STEPS + 1} crashes; running it once more up to "
                         f"k={again.before_crash - 1}, the step before the first crash, "
                         "to record the steps before it")
            if todo:
                result.restarts += 1
                opts.log(f"[{opts.suite}] {variant}: restarting the guest for the {len(todo)} remaining jobs")


def _status(res) -> tuple[int, str]:
    return res.status, res.stdout + res.stderr


def run_suite(opts: RunOptions) -> SuiteResult:
    get(opts.suite)  # an unknown suite is an error naming the suites there are
    for v in opts.variants:
        if v not in KERNELS:
            raise ForkdiffError(f"unknown variant {v!r}", f"use one of: {', '.join(KERNELS)}")
    from ..vm import kvm

    opts = resolve_icount(opts, lambda: kvm.probe().usable)
    if opts.calibrate_on not in opts.variants and opts.variants:
        opts = replace(opts, calibrate_on=opts.variants[0])  # a run of one kernel fits on it
    jobs = plan(opts)
    log = ObservationLog(opts.out)
    result = SuiteResult()
    for variant in opts.variants:
        run_variant(opts, variant, jobs + variant_jobs(opts, variant), log, result)
    return result


def variant_jobs(opts: RunOptions, variant: str) -> list[Job]:
    """Jobs only one variant runs: spawn's calibration layouts, on the baseline kernel
    (orchestrator.run.calibration; the patched kernel's timings are predicted, never fitted), or
    on the one kernel of a run without a baseline (its model is fitted on them, the seed's
    layout held out: orchestrator.analysis.spawn_model)."""
    if opts.suite != "spawn" or variant != opts.calibrate_on or not opts.calibrate:
        return []
    if uses_insn_profile(opts) and not opts.patches:
        # without PATCHES= the instruction profiles judge every kernel; with them the work
        # model fitted on the baseline's calibration layouts still judges the patched kernel
        # where the run has no reference kernel (orchestrator.analysis.insn_rows.fitted_on)
        return []
    from .calibration import CALIBRATION_DURATION, calibration_scenarios

    out = []
    for sc in calibration_scenarios():
        layout = from_dict({k: v for k, v in sc.items() if k not in ("calibration", "replayed")})
        out.append(Job(sc["name"], sc, "spawn",
                       (*layout.guest_args(), "--duration", f"{CALIBRATION_DURATION:g}"),
                       timeout=120 + 40 * CALIBRATION_DURATION + layout.layout_count / 50,
                       repeat=0))
    return out
