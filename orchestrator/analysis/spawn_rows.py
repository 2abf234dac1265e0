"""Spawn timing rows: the frame of spawn measurements, the simulator's work counts per job, and
the verdict rows of both axes (orchestrator.analysis.timing, orchestrator.analysis.spawn_model)."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from .compare_jobs import KS, VV, ObservedJob
from .job_predictions import Predictor, _pred
from .spawn_model import MEASURED_BAND_SOURCE
from .spawn_model import verdict as band_verdict


def spawn_frame(jobs: list[ObservedJob]) -> pd.DataFrame:
    rows = []
    for j in jobs:
        for r in j.by("spawn"):
            rows.append({"variant": j.variant, "vmas": r["values"].get("map_count"),
                         "forks_per_s": r["value"], "job": j, "icount": bool(r.get("icount"))})
    return pd.DataFrame(rows, columns=["variant", "vmas", "forks_per_s", "job", "icount"])


def spawn_work(predictor: Predictor) -> Callable[[ObservedJob, str], dict]:
    """The simulator's work counts (simulator.work) of a spawn job under a kernel model."""
    def work_of(job: ObservedJob, model: str) -> dict:
        return _pred(predictor(job, model), "op_counts")["work"]
    return work_of


def timing_rows(timing: pd.DataFrame, cost: dict | None) -> list[dict]:
    """Variant vs variant: the patched kernel must not be significantly slower than the
    baseline at any VMA count (Welch's t-test, p < 0.05; under -icount with one run per
    count the rates are exact, see orchestrator.analysis.timing); the work model's predicted
    improvement stands beside the observed one. Kernel vs simulator: the work model's forks/s
    for the patched kernel (orchestrator.analysis.spawn_model, fitted on baseline measurements only)
    against the guest's: a mismatch outside the model's validated band."""
    predicted_rate = {e["vmas"]: e["predicted"] for e in cost["errors"]
                      if e.get("layout", "spawn") == "spawn"
                      and e.get("variant", cost["predicts"]) == cost["predicts"]} if cost else {}
    rows = []
    for r in timing.itertuples():
        regression = bool(r.significant) and r.improvement_pct < 0
        pred = predicted_rate.get(r.vmas)
        test = r.test if hasattr(r, "test") else "Welch t-test"
        rows.append({"axis": VV, "suite": "spawn", "variant": "both", "model": "", "profile": "",
                     "scenario": f"total-{r.vmas}", "measurement": "improvement_pct", "key": f"vmas={r.vmas}",
                     "observed": f"{r.improvement_pct:.2f} ± {r.improvement_ci:.2f}",
                     "predicted": f"{(pred / r.baseline_forks_per_s - 1) * 100:.2f}" if pred else "",
                     "verdict": "mismatch" if regression else "match",
                     "rule": f"{test} p<0.05: patched not significantly slower",
                     "detail": f"p={r.welch_p:.4g}; "
                               + ("significantly slower" if regression else "significantly faster"
                                  if r.significant else "no significant difference")})
    if cost:
        fo = cost["model"]["fitted_on"]
        fitted = (f"work model fitted on {fo['variant']} only ("
                  + (f"{fo['model']} model, " if fo.get("model", fo["variant"]) != fo["variant"] else "")
                  + f"{fo['points']} points, {len(fo['layouts'])} layouts)")
        for e in cost["errors"]:
            band = e.get("band_pct", cost["tolerance_pct"])  # spawn_model: the row's own band
            scen = f"total-{e['vmas']}" if e.get("layout", "spawn") == "spawn" else e["layout"]
            measured = e.get("band_source") == "measurement"
            source = (e["band"] if measured else
                      f"{fitted}; band ±{band:.2f}% (largest leave-one-layout-out error + margin)"
                      if band == band else f"{fitted}; no validated band (one layout: nothing to "
                                           "hold out), informational")
            rows.append({"axis": KS, "suite": "spawn", "variant": e.get("variant", cost["predicts"]),
                         "model": e.get("model", cost.get("predicts_model", cost["predicts"])),
                         "profile": "", "scenario": scen,
                         "measurement": "forks_per_s", "key": f"vmas={e['vmas']}",
                         "observed": f"{e['observed']:.2f}", "predicted": f"{e['predicted']:.2f}",
                         "verdict": band_verdict(e["error_pct"], band),
                         "rule": source,
                         "detail": f"prediction error {e['error_pct']:+.2f}%; {e.get('how', '')}",
                         "band": (f"±{band:.2f}% " + (MEASURED_BAND_SOURCE
                                                      if measured else "work model (leave-one-layout-out)"))
                         if band == band else "none"})
    return rows
