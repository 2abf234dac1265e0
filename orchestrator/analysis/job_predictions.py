"""Simulator predictions per job (Predictor: one simulator run per scenario, program, VMA count,
model and run config, cached), and the guest binaries' program headers the simulator needs
(read from guest/bin, kept with a results folder as guest-elf.json)."""

from __future__ import annotations

import json
from pathlib import Path

from simulator import predict as sim_predict
from simulator.exec_image import ElfInfo, Segment, read_elf
from simulator.scenario import ScenarioError, from_dict

from .. import resources
from ..errors import ForkdiffError
from ..suite_defs import REGISTRY as SUITES
from .compare_jobs import ObservedJob

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
            self._cache[key] = sim_predict.records(scenario, model, program=job.program,
                                                   total=job.total, elf=self.elf(job.program),
                                                   measurements=measurements_for(job),
                                                   settings=rm.settings, config=rm.config)
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


GUEST_BIN_HOST = resources.guest_bin_dir()
GUEST_BIN_GUEST = "/usr/local/bin"


def guest_elf(program: str):
    """Program headers of the guest binary that ran (guest/bin/<program>, baked into the
    initramfs at /usr/local/bin): its PT_LOAD segments decide the child's first VMAs."""
    path = GUEST_BIN_HOST / program
    if not path.is_file():
        raise ForkdiffError(f"guest binary {path} is missing: the simulator needs its ELF headers",
                            "run 'make guest'")
    return read_elf(path, f"{GUEST_BIN_GUEST}/{program}")


ELF_FILE = "guest-elf.json"


def save_elves(elves: dict[str, ElfInfo], path: Path) -> None:
    data = {name: {"path": e.path, "loads": [s.__dict__ for s in e.loads],
                   "relro": list(e.relro) if e.relro else None, "tls_memsz": e.tls_memsz,
                   "buffers": [list(b) for b in e.buffers]}
            for name, e in sorted(elves.items())}
    path.write_text(json.dumps(data, indent=1))


def load_elves(path: Path) -> dict[str, ElfInfo]:
    """The guest binaries' program headers kept with a results folder, so that comparing it
    again later does not depend on guest/bin/ still holding the same binaries."""
    if not path.is_file():
        return {}
    data = json.loads(path.read_text())
    return {name: ElfInfo(d["path"], tuple(Segment(**s) for s in d["loads"]),
                          tuple(d["relro"]) if d["relro"] else None, d["tls_memsz"],
                          tuple((n, a) for n, a in d.get("buffers") or ()))
            for name, d in data.items()}


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
