"""Join what the guest observed (observations.jsonl) with what the simulator predicts for the
same scenario and kernel model, and give every comparison a verdict (orchestrator/results/verdicts.py).

Rules:
  maps    exact: parent and child map_count, the child's VMA list (start-end, perms, offset,
          file/anon/[name]), DONTFORK VMAs absent, WIPEONFORK VMAs present and reading zero,
          the parent's maps unchanged by the fork.
  faults  exact: the number of counted checks a successful fork makes, and for every k the
          outcome of failing the k-th (ENOMEM / absorbed, fork succeeded / not reached); the
          parent's maps unchanged after every failed fork (invariant, no prediction needed).
  counts  exact: median objects allocated per fork from maple_node, vm_area_struct, anon_vma,
          anon_vma_chain (SLUB_STATS alloc counters).
  spawn   timings, see orchestrator/analysis/timing.py and orchestrator/analysis/spawn_model.py: variant vs
          variant (Welch's t-test), kernel vs simulator (work model fitted on the baseline's
          measurements only, predicting the patched kernel, within its validated band).

Every job first: its guest program must end with its final record (its suite's `final`,
orchestrator/suite_defs) or leave an
error record (else an `error` row, final_record); its records' kernel_config and fault_settings
must be ones the simulator models (simulator/runconfig.py; else one `error` row per cause,
run_config, and no prediction), and the predictions are made with them. A job on a tree the
simulator does not model (its records' kernel_facts, runconfig.tree_problems) gets one `skipped`
row and the kernel-only checks of orchestrator/analysis/kernel_only.py instead. Records without them
(made before they were recorded) are compared with today's defaults, said in an `info` row.

Where: compare_jobs (ObservedJob, the verdict row), predictor (predictions, guest ELF headers), rules
(maps, faults incl. leaks, counts), run_rows (crashes, final records, run config, kmemleak),
spawn_rows (timings); this module joins them and writes the files.

The model a kernel is compared with is its own variant unless `models` maps it to another: the
run's model map (run.json "model map": the model each kernel's source shows, e.g. "patched" for
7.x's baseline, which is the tree as it is; orchestrator/prepare/variants.py) or MODEL=; comparing
a kernel against the other variant's model is how the planted-divergence test proves the
comparison can fail.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from ..errors import ForkdiffError
from ..results import verdicts as vd
from ..results.folder import OBSERVATIONS_JSONL, VERDICTS_JSONL
from ..results.observations import read_records
from ..run.calibration import is_calibration
from ..suite_defs import REGISTRY as SUITES
from . import kernel_only, rules
from .compare_jobs import KS, VV, ObservedJob, group_jobs
from .insn_rows import insn_cost, insn_rows, load_profiles
from .job_predictions import (
    ELF_FILE,
    LAYOUT_FILE,
    Predictor,
    guest_elf,
    load_elves,
    measurements_for,
    save_elves,
    spawn_layout,
)
from .rules import compare_counts, compare_faults, compare_maps, leak_rows
from .run_rows import (
    _assumed_rows,
    _error_rows,
    _kmemleak_rows,
    _missing_final_rows,
    _not_modelled_rows,
)
from .spawn_model import fit_variants, work_model
from .spawn_rows import spawn_frame, spawn_work, timing_rows
from .timing import improvement_table

__all__ = ["ELF_FILE", "KS", "LAYOUT_FILE", "VV", "ObservedJob", "Predictor", "compare_counts",
           "compare_dir", "compare_faults", "compare_maps", "compare_records", "group_jobs",
           "guest_elf", "leak_rows", "load_elves", "measurements_for", "save_elves",
           "spawn_frame", "spawn_layout", "spawn_work", "timing_rows"]


def comparer_of(suite: str):
    """The rule (a function of orchestrator/analysis/rules.py) the suite object names, or None
    (spawn: its timings are compared below; a suite this forkdiff does not know)."""
    kind = SUITES.get(suite)
    return getattr(rules, kind.comparer) if kind is not None and kind.comparer else None


# ----------------------------------------------------------------- entry point
def compare_records(records: list[dict], models: dict[str, str] | None = None,
                    predictor: Predictor | None = None, profiles: dict[str, dict] | None = None,
                    insn_out: dict | None = None,
                    ) -> tuple[pd.DataFrame, pd.DataFrame | None, dict | None]:
    """Verdicts, the timing table (or None) and the cost model (or None) for observations.
    profiles: the run's kernels' instruction profiles (orchestrator.analysis.insn_rows); the
    instruction model's result is put into insn_out["cost"] when given."""
    # `reference` is the tree as it is where patches/baseline/ applies: a tree whose own
    # dup_mmap() uses __mt_dup (orchestrator/prepare/variants.py), unless the run's map says else
    models = {"reference": "patched", **(models or {})}
    predictor = predictor or Predictor()
    jobs = group_jobs(records)
    rows: list[dict] = []
    unmodelled_spawn = False
    for job in jobs:
        model = models.get(job.variant, job.variant)
        rows += _error_rows(job, model) + _kmemleak_rows(job, model)
        rows += _missing_final_rows(job, model)
        if not any(r.get("measurement") != "error" for r in job.records):
            continue
        rm = job.run_model
        if not rm.tree_modelled:  # a tree the simulator does not model: kernel-only checks
            rows += kernel_only.rows(job, model, rm)
            unmodelled_spawn |= job.suite == "spawn"
            continue
        if not rm.modelled:
            rows += _not_modelled_rows(job, model, rm)
            unmodelled_spawn |= job.suite == "spawn"
            continue
        comparer = comparer_of(job.suite)
        if comparer is not None:
            rows += comparer(job, model, predictor(job, model))
    rows += _assumed_rows(jobs)
    timing, cost = None, None
    spawn = spawn_frame([j for j in jobs if j.suite == "spawn"])
    if not spawn.empty:
        seed = spawn[[not is_calibration(j.scenario) for j in spawn["job"]]]
        deterministic = bool(len(seed)) and bool(seed["icount"].all())
        timing = improvement_table(seed[["variant", "vmas", "forks_per_s"]],
                                   deterministic=deterministic)
        calibrated = any(is_calibration(j.scenario) for j in spawn["job"])
        insn = None
        if not unmodelled_spawn and profiles:
            insn = insn_cost(spawn, profiles, models, spawn_work(predictor))
            if insn_out is not None:
                insn_out["cost"] = insn
        # the work model needs the simulator's op counts; a run whose kernels have instruction
        # profiles plans no calibration layouts: the instruction model judges its timings
        if not unmodelled_spawn and (calibrated or insn is None):
            fitted_on, predicts, anchors = fit_variants(spawn)
            cost = work_model(spawn, spawn_work(predictor), models, fitted_on, predicts, anchors)
        rows += timing_rows(timing, cost) + insn_rows(insn)
    return vd.frame(rows), timing, cost


def _spawn_profile_named(df: pd.DataFrame, records: list[dict]) -> pd.DataFrame:
    """Spawn's rows (both axes and run-vs-run) judge kernels of the profile its measurements were
    made on: faults by default, perf with PERF_KERNELS=1. Name it in their profile column (the
    KCIDB export and the history file a row under its kernel)."""
    profiles = {r.get("profile") for r in records
                if r.get("suite") == "spawn" and r.get("measurement") == "spawn" and r.get("profile")}
    if len(profiles) != 1 or df.empty:
        return df
    df = df.copy()
    df.loc[(df["suite"] == "spawn") & (df["profile"] == ""), "profile"] = profiles.pop()
    return df


def compare_dir(out: Path, models: dict[str, str] | None = None,
                against: Path | None = None) -> pd.DataFrame:
    """Read <out>/observations.jsonl; write predictions.jsonl, verdicts.jsonl, timing.csv and
    cost_model.json beside it. against: an earlier results folder whose spawn forks/s this
    run's are compared with (orchestrator/analysis/against.py: run-vs-run rows)."""
    out = Path(out)
    obs = out / OBSERVATIONS_JSONL
    if not obs.is_file():
        raise ForkdiffError(f"no observations in {out} ({obs.name} missing)",
                            "give the folder a `forkdiff run` or `make vm-test` wrote")
    predictor = Predictor(load_elves(out / ELF_FILE))
    records = read_records(obs)
    insn: dict = {}
    df, timing, cost = compare_records(records, models, predictor, load_profiles(out), insn)
    if df.empty:  # nothing compared is not a pass: a CI job must not go green on it
        vd.write(df, out / VERDICTS_JSONL)
        raise ForkdiffError(f"no comparisons in {out}: {len(records)} readable observation records, "
                            "none of which could be compared",
                            f"read {obs} (unreadable lines are named above); rerun the suites "
                            "into a fresh OUT=")
    if against is not None:
        from .against import compare_against

        df = pd.concat([df, compare_against(out, Path(against), records, dict(models or {}),
                                            predictor, cost)], ignore_index=True)
    save_elves(predictor.elves, out / ELF_FILE)
    with open(out / "predictions.jsonl", "w") as fh:
        for rec in predictor.all():
            fh.write(json.dumps(rec) + "\n")
    df = _spawn_profile_named(df, records)
    vd.write(df, out / VERDICTS_JSONL)
    has_timing = timing is not None and not timing.empty  # one kernel: nothing to compare
    if insn.get("cost") is not None:
        (out / "insn_model.json").write_text(json.dumps(insn["cost"], indent=1))
    for name, present in (("timing.csv", has_timing), ("cost_model.json", cost is not None),
                          ("insn_model.json", insn.get("cost") is not None)):
        if not present:
            (out / name).unlink(missing_ok=True)
    if has_timing:
        timing.to_csv(out / "timing.csv", index=False)
    if cost is not None:
        (out / "cost_model.json").write_text(json.dumps(cost, indent=1))
    return df
