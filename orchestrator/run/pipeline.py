"""`make vm-test` end to end: kernels -> suites -> compare -> report, with progress on stderr.

Which kernels (orchestrator/prepare/variants.py decides; the run prints its choice): on a tree
whose dup_mmap() copies with __mt_dup (6.8 on), `patched` is the tree as it is (plus $PATCHES)
and `baseline` the tree plus patches/baseline/. Where that patch does not apply (7.x: dup_mmap()
moved to mm/mmap.c and mas_expected_entries() is gone, so the pre-series loop cannot be
restored), `baseline` is the tree as it is when PATCHES= are given: the reference kernel the
patched one is measured and predicted from, compared with the tree's own model ("patched");
without PATCHES= the run says so and goes on with `patched` alone. On a tree from before the
series (6.1) `baseline` is the tree as it is, plus `patched` (the tree + $PATCHES) only when
patches are given. Which model each kernel is compared with follows the plan's model map, not
the variant's name: the model its dup_mmap() source shows (treefacts.detect_dup_mmap_model; a
patched kernel made from a pre-series tree: its built source's), unless MODEL= says otherwise.
run.json records the map ("model map") and what each kernel is built from ("made of").

Before anything is built the run says whether the simulator models the tree
(simulator/runconfig.py tree_notice); on a tree it does not model the model's verdicts are
`skipped` and the kernel-only checks run (orchestrator/analysis/kernel_only.py).
"""

from __future__ import annotations

import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from simulator import runconfig

from ..analysis import report as report_mod
from ..analysis.compare import compare_dir
from ..analysis.history_record import record_folder
from ..analysis.summary import print_summary
from ..analysis.verdicts import failing
from ..errors import ForkdiffError
from ..prepare import treefacts
from ..prepare import variants as variants_mod
from ..prepare.kernel import build_kernel
from ..prepare.patches import baseline_error, env_patches, patch_identity, patch_subject
from ..prepare.rootfs import build_rootfs
from ..prepare.tree import resolve_tree
from ..suite_defs import NAMES as SUITE_NAMES
from ..vm import guest as vm
from ..vm import kvm
from ..vm.guest_pool import GuestPool
from . import observers as observers_mod
from . import provenance, shards
from .faultsetup import FaultOptions
from .observations import ObservationLog
from .shards import Unit, units_of
from .suites import (
    SPAWN_VMAS,
    RunOptions,
    SuiteResult,
    boot_slub_debug,
    load_scenarios,
    plan,
    profile_of,
    resolve_icount,
    run_variant,
    variant_jobs,
)


@dataclass
class VmTestOptions:
    out: Path
    suites: tuple[str, ...] = SUITE_NAMES
    vmas: tuple[int, ...] = SPAWN_VMAS
    duration: float = 2.0  # guest (virtual) seconds per spawn measurement
    repeats: int = 0  # spawn runs per VMA count; 0: 1 under -icount (a run repeats exactly), 5 in real time
    tree: str | None = None
    patches: tuple[Path, ...] = ()
    models: dict[str, str] = field(default_factory=dict)
    resume: bool = False
    spawn_timing: str = "icount"  # spawn: "icount" (virtual time) or "realtime" (KVM only)
    jobs: int = 0  # guests at a time (one per variant, at most one per CPU); 0: automatic
    scenarios: tuple[str, ...] = ()  # maps/faults/counts: scenario names or files (default: each suite's own)
    variants: tuple[str, ...] = ()  # kernels to run (default: every variant the tree gives)
    kmemleak: bool = False  # faults suite: kmemleak=on, fork's caches only, a leak scan per sweep
    faults: tuple[str, ...] = ("slab",)  # faults suite: what fail-nth counts (FAULTS=slab,page)
    observers: tuple[str, ...] = ()  # faults suite: tasks beside each sweep (OBSERVERS=; run/observers.py)
    observer_seed: int = 1  # ... their seed (OBSERVER_SEED=)
    shard: tuple[int, int] | None = None  # (i, n): run only the i-th of n shards (orchestrator.run.shards)
    executor: str = ""  # "": threads here; "dask" or "dask:ADDRESS" (orchestrator.run.dask_executor)
    sweep_part_s: float = 600.0  # with shards/Dask: split fault sweeps estimated longer into k-ranges
    split_n: int = 0  # k-ranges per long sweep at most (0: the shard count; Dask: its QEMU slots)
    spawn_fit_on: str = "baseline"  # the kernel spawn's calibration layouts run on (set by run())
    against: Path | None = None  # an earlier results folder to compare spawn forks/s with
    history_db: str = ""  # results database to record the run in ("": the automatic one)

    @property
    def parts(self) -> int:
        return self.split_n or (self.shard[1] if self.shard else 1)


class Progress:
    def __init__(self) -> None:
        self.t0 = time.monotonic()

    def __call__(self, stage: str, item: str = "") -> None:
        el = int(time.monotonic() - self.t0)
        print(f"[vm-test {el // 60:02d}:{el % 60:02d}] {stage}{': ' + item if item else ''}",
              file=sys.stderr, flush=True)


def _variants(tree_path: Path, say: Progress, model: str,
              patches: tuple[Path, ...] = ()) -> variants_mod.VariantPlan:
    """The kernels this tree gives (orchestrator/prepare/variants.py), said on stderr."""
    plan = variants_mod.plan(model, lambda: baseline_error(tree_path), patches)
    for stage, line in plan.notes:
        say(stage, line)
    return plan


def suite_options(opts: VmTestOptions, suite: str, variant: str, scenarios, say: Progress,
                  kvm_usable) -> RunOptions:
    """The RunOptions of one suite on one kernel variant of this run."""
    return resolve_icount(RunOptions(suite=suite, out=opts.out, variants=(variant,), vmas=opts.vmas,
                          duration=opts.duration, scenarios=scenarios if suite != "spawn" else None,
                          repeats=(opts.repeats or None) if suite == "spawn" else None, resume=opts.resume,
                          fault=FaultOptions(slab="slab" in opts.faults,
                                             page_alloc="page" in opts.faults),
                          kmemleak=opts.kmemleak, observers=opts.observers,
                          observer_seed=opts.observer_seed,
                          spawn_timing=opts.spawn_timing, tree=opts.tree, patches=opts.patches,
                          calibrate_on=opts.spawn_fit_on, log=lambda m: say("suite", m)), kvm_usable)


def suite_jobs(ro: RunOptions, variant: str) -> list:
    return plan(ro) + variant_jobs(ro, variant)


def _variant_suites(opts: VmTestOptions, variant: str, scenarios, say: Progress,
                    kvm_usable, keep: set[str] | None = None) -> dict[str, tuple[SuiteResult, float]]:
    """Every suite of the run on one kernel variant, in order, in this worker thread (only the
    jobs named in `keep`, a shard's, when given). Suites of one profile share one guest
    (GuestPool): maps, faults and counts boot the faults kernel once."""
    done: dict[str, tuple[SuiteResult, float]] = {}
    log = ObservationLog(opts.out)
    with GuestPool() as guests:
        for suite in opts.suites:
            t0 = time.monotonic()
            ro = suite_options(opts, suite, variant, scenarios, say, kvm_usable)
            jobs = [u.job for u in units_of(ro, variant, suite_jobs(ro, variant), opts.parts, opts.sweep_part_s)
                    if keep is None or u.name in keep]
            if not jobs:
                continue
            res = SuiteResult()
            run_variant(ro, variant, jobs, log, res, guests)
            done[suite] = (res, time.monotonic() - t0)
            say("suite", f"{suite} on {variant}: {res.records} records, {len(res.errors)} errors "
                         f"in {done[suite][1]:.0f} s")
    return done


def run_units(opts: VmTestOptions, variants: list[str], scenarios, say: Progress,
              kvm_usable) -> list[Unit]:
    """Every job of the run, in run order (variant, suite, the suite's job order)."""
    units = []
    for v in variants:
        for suite in opts.suites:
            ro = suite_options(opts, suite, v, scenarios, say, kvm_usable)
            units += units_of(ro, v, suite_jobs(ro, v), opts.parts, opts.sweep_part_s)
    return units


def run(opts: VmTestOptions) -> int:
    say = Progress()
    out = opts.out
    ObservationLog(out)  # fails now, before any build, when the folder cannot be written
    tree = resolve_tree(opts.tree)
    facts = treefacts.detect(tree.path)
    notice = runconfig.tree_notice(facts)
    say("model", notice or f"the simulator models this tree ({facts['version']}): "
                           "kernel-vs-simulator and kernel-only checks")
    for part in runconfig.partial_model(facts):
        say("model", f"partly: {part}")
    patches = tuple(opts.patches) or tuple(env_patches())
    tree_model = facts["dup_mmap_model"]
    vplan = _variants(tree.path, say, tree_model, patches)
    variants = list(vplan.variants)
    if opts.variants:
        missing = [v for v in opts.variants if v not in variants]
        if missing:
            raise ForkdiffError(f"VARIANTS asks for {', '.join(missing)}, which this tree does not give",
                                f"use VARIANTS= with: {', '.join(variants)}")
        variants = [v for v in variants if v in opts.variants]
    # spawn's work model is fitted on one kernel: the baseline when the run has one, else its
    # only kernel (orchestrator.analysis.spawn_model)
    opts = replace(opts, spawn_fit_on="baseline" if "baseline" in variants else variants[0])
    scenarios = load_scenarios(opts.scenarios) if opts.scenarios else None
    models = {**vplan.models, **opts.models}
    meta = {"run": out.name, "started": datetime.now(UTC).isoformat(timespec="seconds"),
            "tree": str(tree.path), "tree_identity": tree.identity, "kernel_version": tree.version,
            "simulator": notice or "models this tree", "kernel_facts": json.dumps(facts),
            "variants": ", ".join(variants),
            "made of": "; ".join(f"{v}: {vplan.made_of[v]}" for v in variants),
            **({"reference kernel": "baseline = the tree as it is (its dup_mmap() already uses "
                                    "__mt_dup and patches/baseline/ does not apply), compared with "
                                    "the patched model"} if vplan.reference and "baseline" in variants else {}),
            **({"measured A/B": "; ".join(f"{v} (the tree + PATCHES) against {r} (the tree as it is), "
                                          "measured at the same counts" for v, r in ab.items())}
               if (ab := {v: r for v, r in vplan.reference_of.items() if {v, r} <= set(variants)}) else {}),
            "models": ", ".join(f"{v} kernel vs {models.get(v, v)} model" for v in variants),
            "suites": ", ".join(opts.suites), "scenarios": ", ".join(opts.scenarios) or "default",
            "spawn_vmas": ", ".join(map(str, opts.vmas)),
            "spawn_duration_s": opts.duration, "spawn_repeats": opts.repeats or "1 (-icount), 5 (real time)",
            "kmemleak": "on (faults suite)" if opts.kmemleak else "off",
            "faults": ",".join(opts.faults),
            "observers": (f"{','.join(opts.observers)} (seed {opts.observer_seed}; faults suite, "
                          f"kernel profile {observers_mod.PROFILE})") if opts.observers else "none",
            # what `forkdiff reply` names and its one-command reproduction gives back
            # a tree given as a path or debian: spec; a resolved KernelTree (forkdiff series,
            # bisect-run) by its folder
            "tree_spec": str(getattr(opts.tree, "path", opts.tree) or ""),
            "model_arg": ",".join(f"{k}={v}" for k, v in sorted(opts.models.items())),
            "patches": [{**p, "subject": patch_subject(Path(p["path"]))}
                        for p in patch_identity(patches)]}
    if opts.against is not None:  # before anything is built: a folder we cannot compare is refused
        from ..analysis.against import check_early

        provenance.record(out, meta)
        check_early(opts.against, meta)
        meta["against"] = str(opts.against)
    say("setup", f"tree {tree.path} ({tree.identity}); variants {', '.join(variants)}; "
                 f"tree's dup_mmap model: {tree_model}")
    def save_meta() -> None:
        (out / "run.json").write_text(json.dumps(meta, indent=1))

    profiles = sorted({profile_of(s, opts.observers) for s in opts.suites})
    built = {}
    for profile in profiles:
        for v in variants:
            say("kernel", f"{v}/{profile}")
            t0 = time.monotonic()
            k = built[(v, profile)] = build_kernel(v, profile, tree=opts.tree, patches=opts.patches)
            meta[f"kernel {v}/{profile}"] = k.release
            if v not in models:  # a pre-series tree + PATCHES: the model its built source shows
                models[v] = k.manifest.get("dup_mmap_model", v)
            meta[f"kernel {v}/{profile} wall s"] = round(time.monotonic() - t0, 1)
            # what its guests boot with (the records' slab_debug says what each guest got)
            words = {s: boot_slub_debug(s, k, "slab" in opts.faults)
                     for s in opts.suites if profile_of(s, opts.observers) == profile}
            meta[f"kernel {v}/{profile} slub_debug"] = "; ".join(
                f"{s}: {w}" for s, w in words.items() if w) or "none"
    meta["models"] = ", ".join(f"{v} kernel vs {models.get(v, v)} model" for v in variants)
    t0 = time.monotonic()
    build_rootfs()
    meta["rootfs wall s"] = round(time.monotonic() - t0, 1)
    # KVM for the suites that need exactness only, when it works here (suites.resolve_icount);
    # probed once, with the kernel the first of them boots
    first = next((s for s in opts.suites if s != "spawn"), None)
    needs_probe = first is not None or opts.spawn_timing == "realtime"
    kvm_ok = needs_probe and kvm.probe(
        Path(built[(variants[0], profile_of(first or "spawn", opts.observers))].bzimage)).usable
    meta["kvm"] = "usable" if kvm_ok else "not usable (TCG)" if needs_probe else "not probed"
    provenance.record(out, meta)
    meta["model map"] = models
    units = run_units(opts, variants, scenarios, say, lambda: kvm_ok)
    keep = None
    if opts.shard:
        keep = shards.select(units, opts.shard, out, meta, say)
    run_variants = [v for v in variants if keep is None or any(u.variant == v and u.name in keep for u in units)]
    save_meta()
    if opts.executor:
        from .dask_executor import run_dask

        with vm.terminate_raises():  # SIGTERM/SIGHUP too stop the cluster and its guests
            errors = run_dask(opts, keep, meta, say,
                              lambda o: run_units(o, variants, scenarios, say, lambda: kvm_ok))
        save_meta()
        return _finish(opts, models, meta, say, errors)
    workers = max(1, min(len(run_variants), opts.jobs or os.cpu_count() or 1))
    meta["parallel guests"] = workers
    say("suites", f"{', '.join(opts.suites)} on {', '.join(run_variants)}, {workers} guest(s) at a time")
    errors = 0
    t_suites = time.monotonic()
    with vm.terminate_raises(), ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {pool.submit(_variant_suites, opts, v, scenarios, say, lambda: kvm_ok, keep): v
                   for v in run_variants}
        try:
            for fut in as_completed(futures):
                for suite, (res, seconds) in fut.result().items():
                    meta[f"suite {suite} {futures[fut]} wall s"] = round(seconds, 1)
                    errors += len(res.errors)
                save_meta()
        except BaseException:
            vm.stop_all_guests()  # workers see their guests lost and end; no new guest starts
            raise
    meta["suites wall s"] = round(time.monotonic() - t_suites, 1)
    save_meta()
    return _finish(opts, models, meta, say, errors)


def _finish(opts: VmTestOptions, models: dict[str, str], meta: dict, say: Progress, errors: int) -> int:
    """Compare and report, or for a shard only say how to merge it."""
    out = opts.out
    if opts.shard:
        say("shard", f"{opts.shard[0]}/{opts.shard[1]} done: {out} ({errors} errors); when every "
                     f"shard is done: forkdiff merge MERGED SHARD-FOLDERS...")
        return 1 if errors else 0
    say("compare", str(out))
    t0 = time.monotonic()
    df = compare_dir(out, models, against=opts.against)
    meta["compare wall s"] = round(time.monotonic() - t0, 1)
    (out / "run.json").write_text(json.dumps(meta, indent=1))
    if (db := record_folder(out, opts.history_db or None)) is not None:
        say("history", f"recorded in {db}")
    say("report", str(out / "report.html"))
    t0 = time.monotonic()
    report_mod.render(out, opts.history_db or None)
    meta["report wall s"] = round(time.monotonic() - t0, 1)
    (out / "run.json").write_text(json.dumps(meta, indent=1))
    print_summary(df, out)
    print(f"report: {out / 'report.html'}")
    return 1 if (errors or not failing(df).empty) else 0
