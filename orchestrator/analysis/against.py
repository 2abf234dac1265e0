"""Regression against an earlier run (`--against OLD`): this run's spawn forks/s per kernel and
VMA count beside OLD's, typically another version of the tree or of the patch.

The simulator predicts the change from the two runs' modelled work: for each kernel variant
and seed count both runs measured, the prediction for this run is OLD's measured rate
transferred by the work model (OLD's seconds/fork minus the modelled cost of OLD's work plus
that of this run's, simulator.cost.WorkModel.transfer). Where both do the same modelled work
(the simulator's dup_mmap() is the same for both trees and the layout is the same) the
prediction is OLD's rate itself and the band is the measurement's under -icount
(spawn_model.SAME_WORK_BAND_PCT, whatever counts either run has); where the modelled work
differs, the work model's validated band. A slowdown beyond the band is a mismatch; a speed-up
beyond it is `info` (faster than the model says, not a regression).

Only comparable folders are compared: the same QEMU, the same guest `spawn` binary and the
same timing mode (-icount or not). Anything else is refused with the difference named, since
forks/s of another QEMU or binary measure something else."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from ..errors import ForkdiffError
from ..results.folder import OBSERVATIONS_JSONL, RUN_JSON
from ..results.observations import read_records
from ..results.provenance import GUEST_BINARIES, QEMU_VERSION
from ..run.calibration import is_calibration
from .compare_jobs import ObservedJob, group_jobs
from .job_predictions import Predictor, _pred
from .spawn_model import (
    MEASURED_BAND_SOURCE,
    SAME_WORK_BAND_PCT,
    measured_band_applies,
    model_of_cost,
)

RR = "run-vs-run"


def load_run(folder: Path) -> tuple[dict, list[dict]]:
    """run.json and the observations of a results folder, or a ForkdiffError saying what is
    missing."""
    folder = Path(folder)
    obs = folder / OBSERVATIONS_JSONL
    if not obs.is_file():
        raise ForkdiffError(f"--against {folder}: no observations.jsonl there",
                            "give the results folder of an earlier `make vm-test` with the spawn suite")
    try:
        meta = json.loads((folder / RUN_JSON).read_text())
    except (OSError, ValueError) as exc:
        raise ForkdiffError(f"--against {folder}: no readable run.json ({exc})",
                            "give a results folder written by forkdiff vm-test") from None
    return meta, read_records(obs)


def saved_models(out: Path) -> dict[str, str]:
    """The model map the run that wrote `out` used (run.json "model map"; {} without one): a
    kernel is compared with the model its source shows, which is not always its variant's
    name (7.x's baseline with PATCHES= is the tree as it is, model "patched")."""
    try:
        meta = json.loads((out / RUN_JSON).read_text())
    except (OSError, ValueError):
        return {}
    found = meta.get("model map") if isinstance(meta, dict) else None
    return {str(k): str(v) for k, v in found.items()} if isinstance(found, dict) else {}


def _spawn_mode(records: list[dict]) -> set[str]:
    return {str(r.get("qemu_mode")) for r in records
            if r.get("suite") == "spawn" and r.get("measurement") == "spawn"}


def _spawn_profiles(records: list[dict]) -> set[str]:
    """The kernel profiles a run's spawn measurements were made on (records before the profile
    was recorded: perf, spawn's only profile then)."""
    return {str(r.get("profile") or "perf") for r in records
            if r.get("suite") == "spawn" and r.get("measurement") == "spawn"}


def _not_comparable(old: Path, why: str) -> ForkdiffError:
    return ForkdiffError(f"--against {old}: not comparable: {why}",
                         "compare runs made with the same QEMU and guest programs (rerun the "
                         "earlier tree with this checkout)")


def check_early(old: Path, new_meta: dict) -> None:
    """Before anything is built: OLD is a results folder with spawn measurements made with this
    QEMU and this guest spawn binary (new_meta: provenance.record()'s keys), else an error."""
    old_meta, old_records = load_run(old)
    why = refusal(new_meta, old_meta, None, old_records)
    if why is None and not _spawn_mode(old_records):
        why = "the earlier run has no spawn measurements"
    if why:
        raise _not_comparable(old, why)


def refusal(new_meta: dict, old_meta: dict, new_records: list[dict] | None = None,
            old_records: list[dict] | None = None) -> str | None:
    """Why two runs' forks/s cannot be compared (another QEMU, guest spawn binary, timing
    mode or kernel profile), or None."""
    a, b = new_meta.get(QEMU_VERSION), old_meta.get(QEMU_VERSION)
    if not a or not b or a != b:
        return f"QEMU differs: this run {a or 'unknown'}, the earlier run {b or 'unknown'}"
    a = (new_meta.get(GUEST_BINARIES) or {}).get("spawn")
    b = (old_meta.get(GUEST_BINARIES) or {}).get("spawn")
    if not a or not b or a != b:
        return (f"the guest spawn binary differs: this run sha256 {a or 'unknown'}, the earlier run "
                f"{b or 'unknown'}")
    if new_records is not None and old_records is not None:
        ma, mb = _spawn_mode(new_records), _spawn_mode(old_records)
        if ma and mb and ma != mb:
            return f"the timing mode differs: this run {', '.join(sorted(ma))}, the earlier run {', '.join(sorted(mb))}"
        if not mb:
            return "the earlier run has no spawn measurements"
        pa, pb = _spawn_profiles(new_records), _spawn_profiles(old_records)
        if pa and pb and pa != pb:  # the faults kernels' debug hooks cost ~160 insns per VMA
            return (f"the kernel profile differs: this run {', '.join(sorted(pa))}, the earlier run "
                    f"{', '.join(sorted(pb))} (PERF_KERNELS=1 times spawn on the perf kernels)")
    return None


def _seed_rates(jobs: list[ObservedJob]) -> dict[tuple[str, int], tuple[float, ObservedJob, bool]]:
    """(variant, vmas) -> (mean forks/s, a job, all under -icount), seed layout only."""
    acc: dict[tuple[str, int], list] = {}
    for j in jobs:
        if j.suite != "spawn" or is_calibration(j.scenario):
            continue
        for r in j.by("spawn"):
            key = (j.variant, int(r["values"].get("map_count")))
            acc.setdefault(key, []).append((float(r["value"]), j, bool(r.get("icount"))))
    return {k: (sum(x[0] for x in v) / len(v), v[0][1], all(x[2] for x in v)) for k, v in acc.items()}


def against_rows(new_records: list[dict], old_records: list[dict], new_models: dict[str, str],
                 old_models: dict[str, str], predictor: Predictor, cost: dict | None,
                 old_label: str) -> list[dict]:
    """The run-vs-run rows: one per kernel variant and seed VMA count both runs measured."""
    new = _seed_rates(group_jobs(new_records))
    old = _seed_rates(group_jobs(old_records))
    model = model_of_cost(cost) if cost else None
    rows = []
    for (variant, vmas), (rate, job, icount) in sorted(new.items()):
        if (variant, vmas) not in old:
            continue
        old_rate, old_job, old_icount = old[(variant, vmas)]
        nm, om = new_models.get(variant, variant), old_models.get(variant, variant)
        work = _pred(predictor(job, nm), "op_counts")["work"]
        old_work = _pred(predictor(old_job, om), "op_counts")["work"]
        if measured_band_applies(work, old_work, icount, old_icount):
            pred, band, source = old_rate, SAME_WORK_BAND_PCT, MEASURED_BAND_SOURCE
            how = f"the same modelled work in both runs: the earlier run's {old_rate:.2f} forks/s"
        elif model is not None:
            pred, band, source = model.transfer(old_rate, old_work, work), cost["tolerance_pct"], \
                "work model (leave-one-layout-out)"
            how = (f"the earlier run's {old_rate:.2f} forks/s, minus its modelled work ({om} model), "
                   f"plus this run's ({nm} model)")
        else:
            pred, band, source = old_rate, float("nan"), "none"
            how = "the modelled work differs and this run has no work model to price it"
        err = (pred / rate - 1.0) * 100.0
        verdict = "info" if band != band else \
            "mismatch" if err > band else "info" if err < -band else "match"
        rows.append({"axis": RR, "suite": "spawn", "variant": variant, "model": nm, "profile": "",
                     "scenario": f"total-{vmas}", "measurement": "forks_per_s", "key": f"vmas={vmas}",
                     "observed": f"{rate:.2f}", "predicted": f"{pred:.2f}", "verdict": verdict,
                     "rule": f"against {old_label}: slower than predicted by more than the band is "
                             "a regression",
                     "detail": f"change {(rate / old_rate - 1) * 100:+.2f}% against the earlier run "
                               f"({old_rate:.2f} forks/s); prediction error {err:+.2f}%; {how}"
                               + ("; faster than predicted" if verdict == "info" and err < -band else ""),
                     "band": f"±{band:.2f}% {source}" if band == band else "none"})
    return rows


def compare_against(out: Path, old: Path, records: list[dict], models: dict[str, str],
                    predictor: Predictor, cost: dict | None) -> pd.DataFrame:
    """The run-vs-run rows of results folder `out` against `old`, or a ForkdiffError when the two
    cannot be compared."""
    try:
        new_meta = json.loads((Path(out) / RUN_JSON).read_text())
    except (OSError, ValueError):
        new_meta = {}
    old_meta, old_records = load_run(old)
    why = refusal(new_meta, old_meta, records, old_records)
    if why:
        raise _not_comparable(old, why)
    from ..results import verdicts as vd

    both = {"reference": "patched"}  # as compare_records: the tree as it is of a 6.12-like tree
    return vd.frame(against_rows(records, old_records, {**both, **models},
                                 {**both, **saved_models(Path(old))}, predictor, cost, str(old)))
