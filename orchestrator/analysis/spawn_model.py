"""Spawn timings, kernel vs simulator: the work model (simulator.cost.calibrate) fitted on the
BASELINE kernel's spawn measurements (the seed's VMA counts plus the calibration layouts of
orchestrator.analysis.calibration), predicting the PATCHED kernel's forks/s without any patched
measurement.

Prediction for the patched kernel at a VMA count (the seed's layout):
    seconds/fork = baseline observed seconds/fork at that count
                   - modelled cost of the baseline's work there + modelled cost of the
                     patched kernel's work there
i.e. the work both kernels do (vm_area_dup, exit_mmap, iterators, page tables ...) is taken
from the measurement and only the work that differs (the baseline's bulk stores and
mas_expected_entries, the patched kernel's __mt_dup and exact-fit stores, tree shapes) is
priced by the model. Where the baseline was not measured at that count, the model alone.

The kernel fitted on is the run's `baseline` variant, whatever it is made of, and each side's
work is counted under the model the run's model map gives it, not under its variant's name. On
a tree whose baseline patch does not apply (7.x) and PATCHES= given, `baseline` is the tree as
it is (orchestrator/build/variants.py), compared with the "patched" model like the patched
kernel: both sides then do the same modelled work, the transfer above gives the reference
kernel's observed rate, and what PATCHES= add to fork() is measured against the band.

A run of one kernel (7.x without PATCHES=, or VARIANTS=patched) has no baseline to fit on: the
model is then fitted on that kernel's own calibration layouts only (the seed's layout held
out) and predicts the seed's layout's forks/s by the model alone (fitted_on == predicts; the
report's rule names what it was fitted on).

Verdict: a kernel-vs-simulator spawn row is a mismatch when the observed forks/s differs from
the prediction by more than its band: the validated band of the model, the largest
leave-one-layout-out error of the calibration plus simulator.cost.BAND_MARGIN_PCT, wherever the
model prices some of the prediction. Where it prices none of it (the simulator's work for the
predicted kernel is that of the measured one at the same layout and count, as for 7.x's
reference kernel: the same model, the same layout), the prediction is the measured kernel's own
rate and the fitted costs do not enter it; its band is then that of the measurement, under
-icount: orchestrator.analysis.timing.ICOUNT_REPEAT_PCT (two runs of a job agree within it) plus
BAND_MARGIN_PCT. In real time (no -icount) such rows keep the model's band."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from simulator.cost import BAND_MARGIN_PCT, CalPoint, WorkModel, calibrate

from .calibration import layout_family
from .timing import ICOUNT_REPEAT_PCT

# the band of a prediction the model prices no part of, under -icount (module docstring)
SAME_WORK_BAND_PCT = ICOUNT_REPEAT_PCT + BAND_MARGIN_PCT


def _mean_rate(grp: pd.DataFrame) -> float:
    return float(grp["forks_per_s"].mean())


def _icount(grp: pd.DataFrame) -> bool:
    """Every measurement of the group was made under -icount (virtual time)."""
    return "icount" in grp and bool(grp["icount"].all())


def work_model(frame: pd.DataFrame, work_of: Callable[[object, str], dict],
               models: dict[str, str], fitted_on: str = "baseline",
               predicts: str = "patched") -> dict | None:
    """frame: one row per spawn measurement (variant, vmas, forks_per_s, job); work_of(job,
    model) gives the simulator's work counts for that job under that kernel model."""
    if frame.empty:
        return None
    frame = frame.assign(layout=[layout_family(j.scenario) for j in frame["job"]])
    own = fitted_on == predicts  # one kernel: fit on its calibration layouts, predict the seed's
    base = frame[frame["variant"] == fitted_on]
    if own:
        base = base[base["layout"] != "spawn"]
    points: list[CalPoint] = []
    base_obs: dict[tuple[str, int], tuple[float, dict, bool]] = {}
    fit_model = models.get(fitted_on, fitted_on)
    for (lay, vmas), grp in base.groupby(["layout", "vmas"], sort=True):
        work = work_of(grp["job"].iloc[0], fit_model)
        rate = _mean_rate(grp)
        points.append(CalPoint(str(lay), int(vmas), rate, work))
        base_obs[(str(lay), int(vmas))] = (rate, work, _icount(grp))
    if len({p.layout for p in points}) < 2 and len(points) < 3:
        return None
    model: WorkModel = calibrate(points, fitted_on={
        "variant": fitted_on, "model": fit_model, "points": len(points),
        "layouts": sorted({p.layout for p in points}),
        "vmas": sorted({p.vmas for p in points if p.layout == "spawn"})})
    errors = []
    pred_model = models.get(predicts, predicts)
    targets = frame[frame["variant"] == predicts]
    if own:
        targets = targets[targets["layout"] == "spawn"]
    for (lay, vmas), grp in targets.groupby(["layout", "vmas"], sort=True):
        work = work_of(grp["job"].iloc[0], pred_model)
        obs = _mean_rate(grp)
        anchor = base_obs.get((str(lay), int(vmas)))
        band: dict = {}
        if anchor is not None:
            pred = model.transfer(anchor[0], anchor[1], work)
            how = f"{fitted_on} observed {anchor[0]:.2f} forks/s, minus its modelled work " \
                  f"({fit_model} model), plus {predicts}'s ({pred_model} model)"
            if dict(work) == dict(anchor[1]) and anchor[2] and _icount(grp):
                band = {"band_pct": SAME_WORK_BAND_PCT,
                        "band": f"the same modelled work on both kernels: the prediction is "
                                f"{fitted_on}'s measured rate; band ±{SAME_WORK_BAND_PCT:.2f}% "
                                f"(-icount repeat spread {ICOUNT_REPEAT_PCT:g}% + margin)"}
        else:
            pred = model.forks_per_s(work)
            how = ("model alone, fitted on this kernel's calibration layouts (the seed's layout "
                   "held out)" if own else "model alone (no baseline measurement at this count)")
        errors.append({"layout": str(lay), "vmas": int(vmas), "observed": obs,
                       "predicted": pred, "error_pct": (pred / obs - 1.0) * 100.0, "how": how,
                       **band})
    return {"model": model.to_dict(), "predicts": predicts, "predicts_model": pred_model,
            "tolerance_pct": model.band_pct, "errors": errors}


def fit_variants(frame: pd.DataFrame) -> tuple[str, str]:
    """(fitted_on, predicts): the baseline predicts the patched kernel when both ran; a run of
    one kernel fits on and predicts that kernel."""
    variants = set(frame["variant"]) if not frame.empty else set()
    if variants == {"patched"} or variants == {"baseline"}:
        v = variants.pop()
        return v, v
    return "baseline", "patched"


def verdict(error_pct: float, band_pct: float) -> str:
    """match / mismatch against the band; info when there is no validated band (a design of
    one layout: nothing can be held out, e.g. a spawn run without the calibration layouts)."""
    if band_pct != band_pct:  # NaN
        return "info"
    return "match" if abs(error_pct) <= band_pct else "mismatch"
