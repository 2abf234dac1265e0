"""Spawn timings, kernel vs simulator: the work model (simulator.cost.calibrate) fitted on the
BASELINE kernel's spawn measurements (the seed's VMA counts plus the calibration layouts of
orchestrator.run.calibration), predicting the PATCHED kernel's forks/s without any patched
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
it is (orchestrator/prepare/variants.py), compared with the "patched" model like the patched
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
MEASURED_MARGIN_PCT. In real time (no -icount) such rows keep the model's band."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from simulator.cost import CalPoint, WorkModel, calibrate

from ..run.calibration import is_replayed, layout_family
from .timing import ICOUNT_REPEAT_PCT

# The band of a prediction the model prices no part of, under -icount (module docstring): the
# repeat spread (timing.ICOUNT_REPEAT_PCT, where the measurements are) plus a margin.
MEASURED_MARGIN_PCT = 0.5
SAME_WORK_BAND_PCT = ICOUNT_REPEAT_PCT + MEASURED_MARGIN_PCT
MEASURED_BAND_SOURCE = "measurement (-icount repeat spread + margin)"


def measured_band_applies(work: dict, anchor_work: dict, icount: bool, anchor_icount: bool) -> bool:
    """The measurement's band judges a prediction from another measurement when the simulator's
    work is the same on both sides and both were measured under -icount (module docstring)."""
    return dict(work) == dict(anchor_work) and icount and anchor_icount


def _mean_rate(grp: pd.DataFrame) -> float:
    return float(grp["forks_per_s"].mean())


def _icount(grp: pd.DataFrame) -> bool:
    """Every measurement of the group was made under -icount (virtual time)."""
    return "icount" in grp and bool(grp["icount"].all())


def _observed(frame: pd.DataFrame, variant: str, model: str,
              work_of: Callable[[object, str], dict]) -> dict[tuple[str, int], tuple[float, dict, bool]]:
    """(layout, vmas) -> (mean forks/s, the simulator's work under `model`, all -icount) of one
    kernel's spawn measurements."""
    out = {}
    for (lay, vmas), grp in frame[frame["variant"] == variant].groupby(["layout", "vmas"], sort=True):
        out[(str(lay), int(vmas))] = (_mean_rate(grp), work_of(grp["job"].iloc[0], model), _icount(grp))
    return out


def work_model(frame: pd.DataFrame, work_of: Callable[[object, str], dict],
               models: dict[str, str], fitted_on: str = "baseline",
               predicts: str | tuple[str, ...] = "patched",
               anchors: dict[str, str] | None = None) -> dict | None:
    """frame: one row per spawn measurement (variant, vmas, forks_per_s, job); work_of(job,
    model) gives the simulator's work counts for that job under that kernel model.
    predicts: the kernel(s) predicted, in order (the last one is the report's `predicts`);
    anchors: {predicted kernel: the measured kernel its prediction starts from} (default the
    fitted one): the measured A/B pair, e.g. {"patched": "reference"} where the run has the
    tree as it is beside the tree + PATCHES (orchestrator/prepare/variants.py)."""
    if frame.empty:
        return None
    targets_of = (predicts,) if isinstance(predicts, str) else tuple(predicts)
    anchors = dict(anchors or {})
    frame = frame.assign(layout=[layout_family(j.scenario) for j in frame["job"]])
    own = targets_of == (fitted_on,)  # one kernel: fit on its calibration layouts, predict the seed's
    fit_model = models.get(fitted_on, fitted_on)
    fit_obs = _observed(frame, fitted_on, fit_model, work_of)
    replayed = {layout_family(j.scenario) for j in frame["job"] if is_replayed(j.scenario)}
    points = [CalPoint(lay, vmas, rate, work) for (lay, vmas), (rate, work, _) in fit_obs.items()
              if not (own and lay == "spawn") and lay not in replayed]
    if len({p.layout for p in points}) < 2 and len(points) < 3:
        return None
    model: WorkModel = calibrate(points, fitted_on={
        "variant": fitted_on, "model": fit_model, "points": len(points),
        "layouts": sorted({p.layout for p in points}),
        "vmas": sorted({p.vmas for p in points if p.layout == "spawn"})})
    errors = []
    for target in targets_of:
        anchor_v = anchors.get(target, fitted_on)
        anchor_model = models.get(anchor_v, anchor_v)
        anchor_obs = ({} if own else fit_obs) if anchor_v == fitted_on else \
            _observed(frame, anchor_v, anchor_model, work_of)
        pred_model = models.get(target, target)
        targets = frame[frame["variant"] == target]
        if own:
            targets = targets[targets["layout"] == "spawn"]
        for (lay, vmas), grp in targets.groupby(["layout", "vmas"], sort=True):
            work = work_of(grp["job"].iloc[0], pred_model)
            errors.append({"variant": target, "model": pred_model, "layout": str(lay), "vmas": int(vmas),
                           **_prediction(model, _mean_rate(grp), _icount(grp), work,
                                         anchor_obs.get((str(lay), int(vmas))), anchor_v,
                                         anchor_model, target, pred_model, own)})
    return {"model": model.to_dict(), "predicts": targets_of[-1],
            "predicts_model": models.get(targets_of[-1], targets_of[-1]),
            "anchors": {t: anchors.get(t, fitted_on) for t in targets_of},
            "tolerance_pct": model.band_pct, "errors": errors}


def _prediction(model: WorkModel, obs: float, icount: bool, work: dict,
                anchor: tuple[float, dict, bool] | None, anchor_v: str, anchor_model: str,
                target: str, pred_model: str, own: bool) -> dict:
    """One spawn row's prediction from its anchor kernel's measurement at the same layout and
    count (else the model alone), and its band when that is not the model's (module doc)."""
    band: dict = {}
    if anchor is not None:
        pred = model.transfer(anchor[0], anchor[1], work)
        how = f"{anchor_v} observed {anchor[0]:.2f} forks/s, minus its modelled work " \
              f"({anchor_model} model), plus {target}'s ({pred_model} model)"
        if measured_band_applies(work, anchor[1], icount, anchor[2]):
            band = {"band_pct": SAME_WORK_BAND_PCT, "band_source": "measurement",
                    "band": f"measured A/B: the same modelled work on {anchor_v} and {target}, so "
                            f"the prediction is {anchor_v}'s measured rate; band "
                            f"±{SAME_WORK_BAND_PCT:.2f}% (-icount repeat spread "
                            f"{ICOUNT_REPEAT_PCT:g}% + margin), whatever counts the run has"}
    else:
        pred = model.forks_per_s(work)
        how = ("model alone, fitted on this kernel's calibration layouts (the seed's layout "
               "held out)" if own else f"model alone (no {anchor_v} measurement at this count)")
    return {"observed": obs, "predicted": pred, "error_pct": (pred / obs - 1.0) * 100.0,
            "how": how, "anchor": anchor_v if anchor is not None else "", **band}


def model_of_cost(cost: dict) -> WorkModel:
    """The work model of a cost_model.json (work_model()'s result)."""
    return WorkModel.from_dict(cost["model"])


def fit_variants(frame: pd.DataFrame) -> tuple[str, tuple[str, ...], dict[str, str]]:
    """(fitted_on, predicted kernels, anchors): the baseline predicts the others when more than
    one ran, the patched kernel from the reference kernel (the tree as it is) when the run has
    one (measured A/B); a run of one kernel fits on and predicts that kernel."""
    variants = set(frame["variant"]) if not frame.empty else set()
    if len(variants) == 1:
        v = variants.pop()
        return v, (v,), {}
    fit = "baseline" if "baseline" in variants else "reference" if "reference" in variants else "patched"
    predicts = tuple(v for v in ("reference", "patched") if v in variants and v != fit)
    return fit, predicts, {"patched": "reference"} if {"reference", "patched"} <= variants else {}


def verdict(error_pct: float, band_pct: float) -> str:
    """match / mismatch against the band; info when there is no validated band (a design of
    one layout: nothing can be held out, e.g. a spawn run without the calibration layouts)."""
    if band_pct != band_pct:  # NaN
        return "info"
    return "match" if abs(error_pct) <= band_pct else "mismatch"
