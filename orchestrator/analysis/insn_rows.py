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

from ..run.calibration import is_calibration
from .compare_jobs import KS
from .insn_calibration import model_of

PROFILE_DIR = "insn-profile"


def load_profiles(out: Path) -> dict[str, dict]:
    d = Path(out) / PROFILE_DIR
    return {p.stem: json.loads(p.read_text()) for p in sorted(d.glob("*.json"))} if d.is_dir() else {}


TREE_PATCHES = "the tree + PATCHES"  # orchestrator.prepare.variants (read, not imported: analysis
TREE = "the tree as it is"  # works on results folders alone)


def fitted_on(variant: str, profiles: dict[str, dict], models: dict[str, str]) -> str | None:
    """Whose profile a kernel's model is fitted on: a kernel built from the tree + PATCHES is
    predicted by the model of the run's reference kernel (the tree as it is, same dup_mmap
    model), never by one fitted on itself (that would absorb what PATCHES change); None when
    the run has no such kernel. Any other kernel: its own profile."""
    if profiles[variant].get("made_of") != TREE_PATCHES:
        return variant
    want = models.get(variant, variant)
    for v, p in sorted(profiles.items()):
        if v != variant and p.get("made_of") == TREE and models.get(v, v) == want:
            return v
    return None


def insn_cost(frame: pd.DataFrame, profiles: dict[str, dict], models: dict[str, str],
              work_of: Callable[[object, str], dict]) -> dict | None:
    """Per kernel with a profile: the model it is predicted by (fitted_on), its band, and the
    prediction for each of the run's seed-layout measurements of that kernel."""
    if frame.empty or not profiles:
        return None
    kernels: dict[str, dict] = {}
    fits: dict[str, object] = {}
    errors = []
    for variant in sorted(profiles):
        model_name = models.get(variant, variant)
        on = fitted_on(variant, profiles, models)
        seed = pd.Series([not is_calibration(j.scenario) for j in frame["job"]], index=frame.index)
        sub = frame[(frame["variant"] == variant) & seed]
        if on is None:
            for vmas, grp in sub.groupby("vmas", sort=True):
                obs = float(grp["forks_per_s"].mean())
                errors.append({"variant": variant, "model": model_name, "vmas": int(vmas),
                               "observed": obs, "predicted": float("nan"),
                               "error_pct": float("nan"), "band_pct": float("nan"),
                               "band": f"{variant} is the tree + PATCHES and the run has no "
                                       "reference kernel (the tree as it is): a model fitted on "
                                       "this kernel itself cannot judge its patch; informational"})
            continue
        prof = profiles[on]
        if not prof.get("points"):
            continue  # not profiled (a stub), and no model of another kernel to predict it
        if on not in fits:
            fits[on] = model_of(prof, models.get(on, on))
        m = fits[on]
        band = m.band_pct + BAND_MARGIN_PCT
        whose = "its own" if on == variant else f"the reference kernel {on}'s"
        src = (f"{variant} predicted by the instruction model fitted on {whose} cached plugin "
               f"profile {prof.get('key')} ({prof.get('release')}: {len(m.points)} layouts' "
               f"instructions per function, the seed's layout at "
               f"{len(m.fitted_on['spawn_vmas'])} counts included); band ±{band:.2f}% = largest "
               f"leave-one-layout-out error {m.band_pct:.2f}% + {BAND_MARGIN_PCT:g}% margin, "
               "fixed per kernel")
        kernels[variant] = {"model": m.to_dict(), "model_name": model_name, "band_pct": band,
                            "band_source": src, "profile_key": prof.get("key"),
                            "fitted_on_kernel": on, "wall": prof.get("wall")}
        for vmas, grp in sub.groupby("vmas", sort=True):
            work = work_of(grp["job"].iloc[0], model_name)  # simulator, this kernel's model
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
                               f"{1e9 / e['predicted']:,.0f} instructions per fork"
                     if e["predicted"] == e["predicted"] else "no prediction"})
    return rows
