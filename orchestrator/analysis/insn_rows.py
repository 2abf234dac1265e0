"""Spawn timings against the instruction model (simulator.insn_cost): each kernel of the run
is predicted by its own model, fitted on that kernel's cached instruction profile (the
plugin's instructions per function and fork over the fixed plan: the calibration layouts and
the seed's spawn layout at all 11 seed counts; orchestrator.run.insnprofile), from the
simulator's work counts for the run's measurement.

The band of a row is that kernel model's largest leave-one-layout-out error (every profiled
layout, the seed's spawn layout included, predicted by the model refitted without it) plus
simulator.cost.BAND_MARGIN_PCT. It depends only on the kernel's profile: the same whatever
VMAS=, SCENARIOS= or shard the run has. The run's results folder keeps each kernel's profile
(<out>/insn-profile/<variant>.json), so `forkdiff compare` needs no VM."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from simulator.cost import BAND_MARGIN_PCT

from .calibration import is_calibration
from .compare_jobs import KS
from .insn_calibration import model_of

PROFILE_DIR = "insn-profile"


def load_profiles(out: Path) -> dict[str, dict]:
    d = Path(out) / PROFILE_DIR
    return {p.stem: json.loads(p.read_text()) for p in sorted(d.glob("*.json"))} if d.is_dir() else {}


def insn_cost(frame: pd.DataFrame, profiles: dict[str, dict], models: dict[str, str],
              work_of: Callable[[object, str], dict]) -> dict | None:
    """Per kernel with a profile: its model (fitted on the profile), band, and the prediction
    for each of the run's seed-layout measurements of that kernel."""
    if frame.empty or not profiles:
        return None
    kernels: dict[str, dict] = {}
    errors = []
    for variant, prof in sorted(profiles.items()):
        model_name = models.get(variant, variant)
        m = model_of(prof, model_name)
        band = m.band_pct + BAND_MARGIN_PCT
        src = (f"{variant}'s instruction model, fitted on its own cached plugin profile "
               f"{prof.get('key')} ({prof.get('release')}: {len(m.points)} layouts' instructions "
               f"per function, the seed's layout at {len(m.fitted_on['spawn_vmas'])} counts "
               f"included); band ±{band:.2f}% = largest leave-one-layout-out error "
               f"{m.band_pct:.2f}% + {BAND_MARGIN_PCT:g}% margin, fixed per kernel")
        kernels[variant] = {"model": m.to_dict(), "model_name": model_name, "band_pct": band,
                            "band_source": src, "profile_key": prof.get("key"),
                            "wall": prof.get("wall")}
        sub = frame[(frame["variant"] == variant)
                    & [not is_calibration(j.scenario) for j in frame["job"]]]
        for vmas, grp in sub.groupby("vmas", sort=True):
            work = work_of(grp["job"].iloc[0], model_name)
            obs = float(grp["forks_per_s"].mean())
            pred = m.forks_per_s(work)
            errors.append({"variant": variant, "model": model_name, "vmas": int(vmas),
                           "observed": obs, "predicted": pred,
                           "error_pct": (pred / obs - 1.0) * 100.0, "band_pct": band,
                           "band": src, "by_function": m.function_insns(work)})
    return {"kind": "insn", "kernels": kernels, "errors": errors}


def insn_rows(cost: dict | None) -> list[dict]:
    from .spawn_model import verdict

    if not cost:
        return []
    rows = []
    for e in cost["errors"]:
        rows.append({"axis": KS, "suite": "spawn", "variant": e["variant"], "model": e["model"],
                     "profile": "", "scenario": f"total-{e['vmas']}",
                     "measurement": "forks_per_s_insn_model", "key": f"vmas={e['vmas']}",
                     "observed": f"{e['observed']:.2f}", "predicted": f"{e['predicted']:.2f}",
                     "verdict": verdict(e["error_pct"], e["band_pct"]),
                     "rule": e["band"],
                     "detail": f"prediction error {e['error_pct']:+.2f}%; predicted "
                               f"{1e9 / e['predicted']:,.0f} instructions per fork"})
    return rows
