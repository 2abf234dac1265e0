"""Simulator predictions per job (Predictor: one simulator run per scenario, program, VMA count,
model and run config, cached in the process and on disk: orchestrator/analysis/prediction_cache.py),
and the guest binaries' program headers the simulator needs (read from guest/bin, kept with a
results folder as guest-elf.json)."""

from __future__ import annotations

import json

from simulator import predict as sim_predict
from simulator.exec_image import ElfInfo
from simulator.scenario import ScenarioError, from_dict

from ..errors import ForkdiffError
from ..results.elves import (
    ELF_FILE,
    GUEST_BIN_GUEST,
    GUEST_BIN_HOST,
    guest_elf,
    load_elves,
    save_elves,
)
from ..suite_defs import REGISTRY as SUITES
from . import prediction_cache
from .compare_jobs import ObservedJob

__all__ = ["ELF_FILE", "GUEST_BIN_GUEST", "GUEST_BIN_HOST", "guest_elf", "load_elves", "save_elves"]

LAYOUT_FILE = sim_predict.LAYOUT_FILE


class Predictor:
    """Simulator predictions per (scenario, program, total, model), computed once each."""

    def __init__(self, elves: dict[str, ElfInfo] | None = None) -> None:
        self._cache: dict[tuple, list[dict]] = {}
        self.elves: dict[str, ElfInfo] = dict(elves or {})

    def elf(self, program: str) -> ElfInfo:
        if program not in self.elves:
            self.elves[program] = guest_elf(program)
        return self.elves[program]

    def __call__(self, job: ObservedJob, model: str) -> list[dict]:
        """Predictions for the job's scenario under the kernel config and fault settings its
        records carry. The caller checks job.run_model.modelled first."""
        sc = spawn_layout(job.scenario) if job.suite == "spawn" else job.scenario
        rm = job.run_model
        if not rm.modelled:
            raise ForkdiffError(f"{job.suite} {job.name}: " + rm.not_modelled[0].message(),
                                rm.not_modelled[0].todo)
        key = (json.dumps(sc, sort_keys=True), job.program, job.total, model, measurements_for(job),
               rm.config, rm.settings)
        if key not in self._cache:
            try:
                scenario = from_dict(sc, source=f"scenario {job.name}")
            except ScenarioError as err:
                raise ForkdiffError(f"observations name a scenario the simulator cannot read: {err}",
                                    "rerun the suite with a valid scenario") from None
            elf = self.elf(job.program)
            self._cache[key] = prediction_cache.cached(
                prediction_cache.key_of(*key, elf),
                lambda: sim_predict.records(scenario, model, program=job.program, total=job.total,
                                            elf=elf, measurements=measurements_for(job),
                                            settings=rm.settings, config=rm.config))
        return self._cache[key]

    def all(self) -> list[dict]:
        return [r for recs in self._cache.values() for r in recs]


def measurements_for(job: ObservedJob) -> tuple[str, ...]:
    """Only what the suite's rules compare (its object's `predicts`, orchestrator/suite_defs): a
    fault outcome per k costs time at large counts, so only a sweep that recorded steps gets them."""
    suite = SUITES.get(job.suite)
    wanted = suite.predicts if suite is not None else ("op_counts",)
    if not (job.by("fault") or job.by("not_reached")):
        wanted = tuple(m for m in wanted if m != "fault_outcome")
    return wanted


def spawn_layout(scenario: dict) -> dict:
    """The layout the spawn suite passes to the guest (its scenario dict carries it)."""
    if "groups" in scenario:
        return {k: scenario[k] for k in ("name", "base", "gap_pages", "repeat", "groups")
                if k in scenario}
    if "vmas" in scenario or "vmas_z" in scenario:  # a list scenario (SCENARIOS= with spawn)
        return {k: scenario[k] for k in ("name", "base", "files", "vmas", "vmas_z") if k in scenario}
    raise ForkdiffError(f"spawn observation for {scenario.get('name')} carries no layout",
                        "rerun the spawn suite with this version of forkdiff")


def _pred(preds: list[dict], measurement: str) -> dict:
    for p in preds:
        if p["measurement"] == measurement:
            return p
    raise KeyError(measurement)
