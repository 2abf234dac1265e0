"""The observations of one guest program run (ObservedJob), grouped from observations.jsonl, and the
verdict row every comparison rule writes (_row)."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field, replace
from functools import cached_property

from simulator import runconfig

KS = "kernel-vs-simulator"
VV = "variant-vs-variant"


@dataclass
class ObservedJob:
    """The observations of one guest program run: one scenario on one kernel."""

    suite: str
    variant: str
    profile: str
    scenario: dict
    program: str
    command: str
    records: list[dict] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.scenario.get("name", "?")

    def by(self, measurement: str) -> list[dict]:
        return [r for r in self.records if r.get("measurement") == measurement]

    def one(self, measurement: str) -> dict | None:
        rs = self.by(measurement)
        return rs[-1] if rs else None

    @cached_property
    def run_model(self) -> runconfig.RunModel:
        """What the simulator makes of the kernel config and fault settings the job's records
        carry (simulator/runconfig.py); records that disagree are not predictable."""
        envs = {json.dumps([r.get("kernel_config"), r.get("fault_settings"), r.get("kernel_facts"),
                            r.get("slab_debug")], sort_keys=True)
                for r in self.records if r.get("measurement") != "error"}
        kc, fs, kf, sd = json.loads(min(envs)) if envs else (None, None, None, None)
        rm = runconfig.resolve(self.suite, kc, fs, kf, sd)
        if len(envs) > 1:
            mixed = runconfig.NotModelled(
                "kernel_config/fault_settings/kernel_facts/slab_debug", f"{len(envs)} different",
                "the job's records were made under different kernels or fault settings "
                "(a resumed run on another kernel?)", "rerun the suite into a fresh folder", "1")
            rm = replace(rm, not_modelled=(*rm.not_modelled, mixed))
        return rm

    @property
    def total(self) -> int | None:
        args = shlex.split(self.command)
        return int(args[args.index("--total") + 1]) if "--total" in args else None


def group_jobs(records: list[dict]) -> list[ObservedJob]:
    jobs: dict[tuple, ObservedJob] = {}
    for r in records:
        sc = r.get("scenario") if isinstance(r.get("scenario"), dict) else {"name": str(r.get("scenario"))}
        key = (r.get("suite"), r.get("variant"), r.get("profile"), sc.get("name"),
               r.get("repeat") if r.get("suite") == "spawn" else None)
        job = jobs.get(key)
        if job is None:
            job = jobs[key] = ObservedJob(r.get("suite", "?"), r.get("variant", "?"), r.get("profile", "?"),
                                  sc, r.get("program", "?"), r.get("command", ""))
        job.records.append(r)
    return list(jobs.values())



def _row(job: ObservedJob, model: str, measurement: str, key: str, observed, predicted, rule: str = "exact",
         detail: str = "", verdict: str | None = None) -> dict:
    if verdict is None:
        verdict = "match" if observed == predicted else "mismatch"
    return {"axis": KS, "suite": job.suite, "variant": job.variant, "model": model,
            "profile": job.profile, "scenario": job.name, "measurement": measurement, "key": key,
            "observed": _text(observed), "predicted": _text(predicted), "verdict": verdict,
            "rule": rule, "detail": detail}


def _text(v) -> str:
    if v is None:
        return ""
    if isinstance(v, list | dict):
        return json.dumps(v)
    return str(v)
