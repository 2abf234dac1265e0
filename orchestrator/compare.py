"""Join what the guest observed (observations.jsonl) with what the simulator predicts for the
same scenario and kernel model, and give every comparison a verdict (orchestrator/verdicts.py).

Rules:
  maps    exact: parent and child map_count, the child's VMA list (start-end, perms, offset,
          file/anon/[name]), DONTFORK VMAs absent, WIPEONFORK VMAs present and reading zero,
          the parent's maps unchanged by the fork.
  faults  exact: the number of counted checks a successful fork makes, and for every k the
          outcome of failing the k-th (ENOMEM / absorbed, fork succeeded / not reached); the
          parent's maps unchanged after every failed fork (invariant, no prediction needed).
  counts  exact: median objects allocated per fork from maple_node, vm_area_struct, anon_vma,
          anon_vma_chain (SLUB_STATS alloc counters).
  spawn   timings, see orchestrator/timing.py and orchestrator/spawn_model.py: variant vs
          variant (Welch's t-test), kernel vs simulator (work model fitted on the baseline's
          measurements only, predicting the patched kernel, within its validated band).

Every job first: its guest program must end with its final record (suites.FINAL) or leave an
error record (else an `error` row, final_record); its records' kernel_config and fault_settings
must be ones the simulator models (simulator/runconfig.py; else one `error` row per cause,
run_config, and no prediction), and the predictions are made with them. Records without them
(made before they were recorded) are compared with today's defaults, said in an `info` row.

The model a kernel is compared with is its own variant unless `models` maps it to another
(MODEL=, or the detected dup_mmap of a user's tree); comparing a kernel against the other
variant's model is how the planted-divergence test proves the comparison can fail.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path

import pandas as pd

from simulator import predict as sim_predict
from simulator import runconfig
from simulator.exec_image import ElfInfo, Segment, read_elf
from simulator.scenario import ScenarioError, from_dict

from . import verdicts as vd
from .calibration import is_calibration
from .errors import ForkdiffError
from .kmemleak import summary as kmemleak_summary
from .observations import read_records
from .spawn_model import verdict as band_verdict
from .spawn_model import work_model
from .suites import FINAL
from .timing import improvement_table

KS = "kernel-vs-simulator"
VV = "variant-vs-variant"
LAYOUT_FILE = sim_predict.LAYOUT_FILE
SLAB_CACHES = ("maple_node", "vm_area_struct", "anon_vma", "anon_vma_chain")


@dataclass
class Job:
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
        envs = {json.dumps([r.get("kernel_config"), r.get("fault_settings")], sort_keys=True)
                for r in self.records if r.get("measurement") != "error"}
        kc, fs = json.loads(min(envs)) if envs else (None, None)
        rm = runconfig.resolve(self.suite, kc, fs)
        if len(envs) > 1:
            mixed = runconfig.NotModelled(
                "kernel_config/fault_settings", f"{len(envs)} different",
                "the job's records were made under different kernels or fault settings "
                "(a resumed run on another kernel?)", "rerun the suite into a fresh folder", "1")
            rm = replace(rm, not_modelled=(*rm.not_modelled, mixed))
        return rm

    @property
    def total(self) -> int | None:
        args = shlex.split(self.command)
        return int(args[args.index("--total") + 1]) if "--total" in args else None


def group_jobs(records: list[dict]) -> list[Job]:
    jobs: dict[tuple, Job] = {}
    for r in records:
        sc = r.get("scenario") if isinstance(r.get("scenario"), dict) else {"name": str(r.get("scenario"))}
        key = (r.get("suite"), r.get("variant"), r.get("profile"), sc.get("name"),
               r.get("repeat") if r.get("suite") == "spawn" else None)
        job = jobs.get(key)
        if job is None:
            job = jobs[key] = Job(r.get("suite", "?"), r.get("variant", "?"), r.get("profile", "?"),
                                  sc, r.get("program", "?"), r.get("command", ""))
        job.records.append(r)
    return list(jobs.values())


# ----------------------------------------------------------------- predictions
class Predictor:
    """Simulator predictions per (scenario, program, total, model), computed once each."""

    def __init__(self, elves: dict[str, ElfInfo] | None = None) -> None:
        self._cache: dict[tuple, list[dict]] = {}
        self.elves: dict[str, ElfInfo] = dict(elves or {})

    def elf(self, program: str) -> ElfInfo:
        if program not in self.elves:
            self.elves[program] = guest_elf(program)
        return self.elves[program]

    def __call__(self, job: Job, model: str) -> list[dict]:
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


def measurements_for(job: Job) -> tuple[str, ...]:
    """Only what the suite's rules compare: a fault outcome per k costs time at large counts."""
    if job.suite == "maps":
        return ("child_maps", "map_count")
    if job.suite == "faults":
        return ("counts",) if not (job.by("fault") or job.by("not_reached")) else ("counts", "fault_outcome")
    if job.suite == "counts":
        return ("counts",)
    return ("op_counts",)


GUEST_BIN_HOST = Path(__file__).resolve().parents[1] / "guest" / "bin"
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
                   "relro": list(e.relro) if e.relro else None, "tls_memsz": e.tls_memsz}
            for name, e in sorted(elves.items())}
    path.write_text(json.dumps(data, indent=1))


def load_elves(path: Path) -> dict[str, ElfInfo]:
    """The guest binaries' program headers kept with a results folder, so that comparing it
    again later does not depend on guest/bin/ still holding the same binaries."""
    if not path.is_file():
        return {}
    data = json.loads(path.read_text())
    return {name: ElfInfo(d["path"], tuple(Segment(**s) for s in d["loads"]),
                          tuple(d["relro"]) if d["relro"] else None, d["tls_memsz"])
            for name, d in data.items()}


def spawn_layout(scenario: dict) -> dict:
    """The layout the spawn suite passes to the guest (its scenario dict carries it)."""
    if "groups" in scenario:
        return {k: scenario[k] for k in ("name", "base", "gap_pages", "repeat", "groups")
                if k in scenario}
    raise ForkdiffError(f"spawn observation for {scenario.get('name')} carries no layout",
                        "rerun the spawn suite with this version of forkdiff")


def _pred(preds: list[dict], measurement: str) -> dict:
    for p in preds:
        if p["measurement"] == measurement:
            return p
    raise KeyError(measurement)


# ----------------------------------------------------------------- helpers
def _row(job: Job, model: str, measurement: str, key: str, observed, predicted, rule: str = "exact",
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


def _maps_line(start: str, end: str, perms: str, offset: int, name: str, is_file: bool) -> str:
    """One VMA as compared: range, perms, offset, and what backs it ([name], the layout file,
    the executable, or anonymous memory)."""
    if name.startswith("["):
        what = name
    elif is_file:
        what = "layout-file" if name == LAYOUT_FILE else "exe"
    else:
        what = "anon"
    return f"{int(start, 16):x}-{int(end, 16):x} {perms} {offset:x} {what}"


def _maps_line_observed(m: dict) -> str | None:
    """A /proc/self/maps line from the guest ([vsyscall] is not a VMA)."""
    path = m.get("path") or ""
    if path == "[vsyscall]":
        return None
    return _maps_line(m["start"], m["end"], m["perms"], int(m["offset"], 16), path,
                      bool(path) and not path.startswith("["))


def _maps_line_predicted(m: dict) -> str:
    return _maps_line(m["start"], m["end"], m["perms"], int(m["offset"]), m.get("name") or "",
                      bool(m.get("file")))


def _first_difference(a: list[str], b: list[str]) -> str:
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return f"line {i + 1}: observed '{x}' predicted '{y}'"
    if len(a) != len(b):
        return f"observed {len(a)} lines, predicted {len(b)}"
    return ""


def _error_rows(job: Job, model: str) -> list[dict]:
    rows = []
    for r in job.by("error"):
        kind = (r.get("values") or {}).get("kind", "")
        # GuestLost here: QEMU ended by itself mid-case (the guest reset, e.g. a triple fault).
        verdict = ("crashed" if kind in ("GuestCrashed", "GuestLost") else "hung" if kind == "GuestHung"
                   else "error")
        excerpt = (r.get("values") or {}).get("console_excerpt") or ""
        detail = str(r.get("value", ""))[:4000] + (f"\n--- console ---\n{excerpt}" if excerpt else "")
        rows.append(_row(job, model, "error", str(r.get("repeat", "")), r.get("value"), "",
                         rule="guest program must run to completion", verdict=verdict,
                         detail=detail))
    return rows


# ----------------------------------------------------------------- run checks
def _missing_final_rows(job: Job, model: str) -> list[dict]:
    """A guest program that stopped before its final record (orchestrator/suites.py FINAL)
    without an error or crash record for the job: its other rows would silently be fewer."""
    final = FINAL.get(job.suite)
    if final is None or job.by(final) or job.by("error"):
        return []
    seen = ", ".join(dict.fromkeys(str(r.get("measurement")) for r in job.records))
    return [_row(job, model, "final_record", final, "missing", final, verdict="error",
                 rule="every job ends with its final record or an error record",
                 detail=f"{job.program} ended without its final record {final} "
                        f"(records: {seen})")]


def _not_modelled_rows(job: Job, model: str, rm: runconfig.RunModel) -> list[dict]:
    """The run's kernel config or fault settings are outside what the simulator models: one
    error per cause, naming it and what to do, instead of predictions for another kernel."""
    return [_row(job, model, "run_config", nm.what, nm.value, nm.modelled, verdict="error",
                 rule="the simulator must model the run's kernel config and fault settings",
                 detail=nm.message())
            for nm in rm.not_modelled]


def _assumed_rows(jobs: list[Job]) -> list[dict]:
    """One info row per suite, kernel and assumption, for records that do not say (made before
    forkdiff recorded the kernel config): today's defaults were used."""
    rows: dict[tuple, dict] = {}
    for job in jobs:
        if not any(r.get("measurement") != "error" for r in job.records):
            continue  # only a crash record: nothing is predicted, nothing assumed
        for note in job.run_model.assumed:
            key = (job.suite, job.variant, job.profile, note)
            if key not in rows:
                rows[key] = _row(job, "", "run_config", "assumed", "not recorded", "defaults",
                                 verdict="info", rule="records without kernel config or fault "
                                 "settings are compared as made with today's defaults",
                                 detail=note) | {"scenario": ""}
    return list(rows.values())


# --- kmemleak (orchestrator/kmemleak.py): one row per scanned sweep -----------------------------
def _kmemleak_rows(job: Job, model: str) -> list[dict]:
    """A sweep's kmemleak scan: no report is a match; unreferenced objects are `crashed`
    (the kernel lost memory on fork's paths, whatever the model says), with the report."""
    rows = []
    for r in job.by("kmemleak"):
        v = r.get("values") or {}
        n = int(r.get("value") or 0)
        if n == 0:
            rows.append(_row(job, model, "kmemleak", "", "no kmemleak report", "no kmemleak report",
                             rule=KMEMLEAK_RULE, verdict="match"))
            continue
        detail = f"{kmemleak_summary(v.get('leaks') or [])}\n--- kmemleak ---\n{v.get('report', '')}"
        rows.append(_row(job, model, "kmemleak", "", f"{n} unreferenced objects", "no kmemleak report",
                         rule=KMEMLEAK_RULE, verdict="crashed", detail=detail[:8000]))
    return rows


KMEMLEAK_RULE = "kmemleak: no unreferenced object after the sweep (two scans, objects >= 5 s old)"
# --- end kmemleak -------------------------------------------------------------------------------


# ----------------------------------------------------------------- suites
def compare_maps(job: Job, model: str, preds: list[dict]) -> list[dict]:
    rows = []
    counts = _pred(preds, "map_count")
    before, child, after = job.one("parent_before"), job.one("child"), job.one("parent_after")
    if before:
        rows.append(_row(job, model, "parent_map_count", "", before["value"], counts["parent"]))
    if child:
        rows.append(_row(job, model, "child_map_count", "", child["value"], counts["child"]))
        obs = [x for x in map(_maps_line_observed, child["values"]["maps"]) if x]
        pred = [_maps_line_predicted(m) for m in _pred(preds, "child_maps")["vmas"]]
        rows.append(_row(job, model, "child_maps", "", f"{len(obs)} VMAs", f"{len(pred)} VMAs",
                         verdict="match" if obs == pred else "mismatch",
                         detail=_first_difference(obs, pred)))
    layout = job.one("child_layout")
    if layout:
        pvmas = {int(m["start"], 16): m for m in _pred(preds, "child_maps")["vmas"]}
        for v in layout["values"]["vmas"]:
            start = int(v["start"], 16)
            p = pvmas.get(start)
            if v["advice"] == "dontfork":
                rows.append(_row(job, model, "dontfork_absent", f"vma={v['index']}",
                                 not v["present"] and not v["overlapped"], p is None))
            elif v["advice"] == "wipeonfork":
                rows.append(_row(job, model, "wipeonfork_zero", f"vma={v['index']}",
                                 bool(v["present"]) and v.get("zero") is True,
                                 p is not None and bool(p.get("wipeonfork"))))
    if after:
        rows.append(_row(job, model, "parent_maps_unchanged", "", after["values"].get("unchanged"), True,
                         rule="invariant: fork() does not change the parent's maps"))
    return rows


def _observed_outcome(r: dict) -> str:
    v = r["values"]
    if r["measurement"] == "not_reached":
        return "not reached"
    if v.get("fork_result", 0) > 0:
        return "ok (absorbed)"
    return "ENOMEM" if v.get("errno") == 12 else f"errno {v.get('errno')}"


def _predicted_outcome(p: dict) -> str:
    if p.get("modelled") is False:
        return "not modelled"
    if not p.get("injected"):
        return "not reached"
    return "ok (absorbed)" if p.get("fork") == "success" else str(p.get("errno"))


def _cache_counts(d: dict | None) -> str:
    """{"vm_area_struct": 1, "vma_lock": 0} -> "vm_area_struct +1"; all zero -> "0"."""
    parts = [f"{c} {n:+d}" for c, n in sorted((d or {}).items()) if n]
    return ", ".join(parts) or "0"


def _failure_site(p: dict | None) -> str:
    """The injected failure a prediction names: site, cache, gfp and the VMA being copied."""
    if not p or not p.get("injected"):
        return "no failure injected"
    where = f", VMA {p['vma_index']} at {p['vma_start']}" if p.get("vma_index") is not None else ""
    return f"{p.get('site')} ({p.get('cache')}, {p.get('gfp')}{where})"


LEAK_RULE = ("exact: slab objects in use after the fork's frees settled (shrink + 'objects', "
             "polled through RCU grace periods) equal those before it")


def leak_rows(job: Job, model: str, r: dict, p: dict | None) -> list[dict]:
    """Per fault record (one k): what the failed fork allocated per cache against the
    simulator's trace up to the k-th check, and what is left once everything it allocated
    should be freed again (net 0 in every cache, failed or absorbed)."""
    v = r["values"]
    k = v["k"]
    if "net" not in v:  # recorded before faultsweep measured leaks
        return []
    rows = []
    site = _failure_site(p)
    failed = v.get("fork_result", 0) < 0
    if failed and p is not None and "allocated" in p:
        obs = {c: n for c, n in (v.get("alloc") or {}).items() if n}
        pred = {c: n for c, n in p["allocated"].items() if n}
        diff = [f"{c}: observed {obs.get(c, 0)}, predicted {pred.get(c, 0)}"
                for c in sorted(set(obs) | set(pred)) if obs.get(c, 0) != pred.get(c, 0)]
        rows.append(_row(job, model, "failed_fork_allocs", f"k={k}", _cache_counts(obs),
                         _cache_counts(pred), rule="exact: SLUB_STATS alloc counters over the fork",
                         detail=f"k={k}, failure at {site}" + (": " + "; ".join(diff) if diff else "")))
    net = v.get("net") or {}
    leaked = {c: n for c, n in net.items() if n > 0}
    late = {c: n for c, n in net.items() if n < 0}
    detail = f"k={k}, failure at {site}"
    if leaked:
        detail = (f"LEAK at k={k}: " + ", ".join(f"{n} {c}" for c, n in sorted(leaked.items()))
                  + f" left after the {'failed' if failed else 'absorbed'} fork; failure at {site}")
        if p and p.get("freed_by_teardown") is not None:
            detail += (f"; predicted: error path frees {_cache_counts(p.get('freed_by_error_path'))}, "
                       f"teardown frees {_cache_counts(p.get('freed_by_teardown'))} "
                       f"({p.get('child_vmas_released')} VMAs in {p.get('teardown_range')}, "
                       f"stopping at the {p.get('stops_at')})")
        if not v.get("settled", True):
            detail += f"; still there after {v.get('settle_ms', 0):.0f} ms of polling"
    elif late:
        detail += "; objects of an earlier step were freed during this one: " + _cache_counts(late)
    rows.append(_row(job, model, "leak_after_fork", f"k={k}", _cache_counts(leaked), "0",
                     rule=LEAK_RULE, detail=detail))
    return rows


def compare_faults(job: Job, model: str, preds: list[dict]) -> list[dict]:
    rows = []
    counts = _pred(preds, "counts")
    cc = job.one("check_count")
    if cc:
        rows.append(_row(job, model, "checks_per_fork", "", cc["value"], counts["checks"],
                         detail="fail-nth checks a successful fork makes under dup_mmap"))
        if "net" in cc["values"]:
            left = {c: n for c, n in cc["values"]["net"].items() if n}
            rows.append(_row(job, model, "leak_after_fork", "probe", _cache_counts(left), "0",
                             rule=LEAK_RULE, detail="the probe: one successful fork, its child exited"))
    pred = {p["k"]: p for p in preds if p["measurement"] == "fault_outcome"}
    for r in sorted(job.by("fault") + job.by("not_reached"), key=lambda r: r["values"]["k"]):
        k = r["values"]["k"]
        p = pred.get(k)
        po = _predicted_outcome(p) if p else "not reached"
        detail = f"{p.get('site')} ({p.get('cache')}, {p.get('gfp')})" if p and p.get("injected") else ""
        rows.append(_row(job, model, "fault_outcome", f"k={k}", _observed_outcome(r), po, detail=detail))
        if r["measurement"] == "fault":
            rows += leak_rows(job, model, r, p)
        if r["measurement"] == "fault" and r["values"].get("fork_result", 0) < 0:
            rows.append(_row(job, model, "parent_maps_after_failure", f"k={k}",
                             r["values"].get("maps_unchanged"), True,
                             rule="invariant: a failed fork leaves the parent's maps unchanged",
                             detail=str(r["values"].get("maps_diff", ""))))
    end = job.one("sweep_end")
    if end and "net" in end["values"]:
        net = end["values"]["net"]
        rows.append(_row(job, model, "sweep_leak", "", _cache_counts(net), "0",
                         rule="exact: slab objects in use at the end of the sweep (settled) equal "
                              "those at its start",
                         detail=f"over {end['values'].get('failed_forks')} failed and "
                                f"{end['values'].get('absorbed_faults')} absorbed forks"
                                + ("" if end["values"].get("settled", True) else
                                   f"; not settled after {end['values'].get('settle_ms', 0):.0f} ms")))
    if end and not end["values"].get("complete", True):
        rows.append(_row(job, model, "sweep_complete", "", False, True, verdict="error",
                         rule="the sweep must reach a k the fork does not reach",
                         detail=f"--max-k stopped it at {end['values'].get('last_k')}"))
    return rows


def compare_counts(job: Job, model: str, preds: list[dict]) -> list[dict]:
    s = job.one("summary")
    if not s:
        return []
    objs = _pred(preds, "counts")
    median = s["values"].get("median") or {}
    rows = []
    for cache in SLAB_CACHES:
        if cache not in median or median[cache].get("alloc") is None:
            continue
        predicted = objs["maple_node_allocated"] if cache == "maple_node" else objs["objects"].get(cache, 0)
        rows.append(_row(job, model, f"{cache}_allocated_per_fork", "", median[cache]["alloc"], predicted,
                         rule="exact (median of repeats)"))
    return rows


COMPARERS: dict[str, Callable[[Job, str, list[dict]], list[dict]]] = {
    "maps": compare_maps, "faults": compare_faults, "counts": compare_counts,
}


# ----------------------------------------------------------------- timings
def spawn_frame(jobs: list[Job]) -> pd.DataFrame:
    rows = []
    for j in jobs:
        for r in j.by("spawn"):
            rows.append({"variant": j.variant, "vmas": r["values"].get("map_count"),
                         "forks_per_s": r["value"], "job": j, "icount": bool(r.get("icount"))})
    return pd.DataFrame(rows, columns=["variant", "vmas", "forks_per_s", "job", "icount"])


def spawn_work(predictor: Predictor) -> Callable[[Job, str], dict]:
    """The simulator's work counts (simulator.work) of a spawn job under a kernel model."""
    def work_of(job: Job, model: str) -> dict:
        return _pred(predictor(job, model), "op_counts")["work"]
    return work_of


def timing_rows(timing: pd.DataFrame, cost: dict | None) -> list[dict]:
    """Variant vs variant: the patched kernel must not be significantly slower than the
    baseline at any VMA count (Welch's t-test, p < 0.05; under -icount with one run per
    count the rates are exact, see orchestrator.timing); the work model's predicted
    improvement stands beside the observed one. Kernel vs simulator: the work model's forks/s
    for the patched kernel (orchestrator.spawn_model, fitted on baseline measurements only)
    against the guest's: a mismatch outside the model's validated band."""
    predicted_rate = {e["vmas"]: e["predicted"] for e in cost["errors"]
                      if e.get("layout", "spawn") == "spawn"} if cost else {}
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
        band = cost["tolerance_pct"]
        fo = cost["model"]["fitted_on"]
        for e in cost["errors"]:
            scen = f"total-{e['vmas']}" if e.get("layout", "spawn") == "spawn" else e["layout"]
            rows.append({"axis": KS, "suite": "spawn", "variant": cost["predicts"],
                         "model": cost["predicts"], "profile": "", "scenario": scen,
                         "measurement": "forks_per_s", "key": f"vmas={e['vmas']}",
                         "observed": f"{e['observed']:.2f}", "predicted": f"{e['predicted']:.2f}",
                         "verdict": band_verdict(e["error_pct"], band),
                         "rule": f"work model fitted on {fo['variant']} only ({fo['points']} points, "
                                 f"{len(fo['layouts'])} layouts); "
                                 + (f"band ±{band:.2f}% (largest leave-one-layout-out error + margin)"
                                    if band == band else "no validated band (one layout: "
                                    "nothing to hold out), informational"),
                         "detail": f"prediction error {e['error_pct']:+.2f}%; {e.get('how', '')}"})
    return rows


# ----------------------------------------------------------------- entry point
def compare_records(records: list[dict], models: dict[str, str] | None = None,
                    predictor: Predictor | None = None) -> tuple[pd.DataFrame, pd.DataFrame | None, dict | None]:
    """Verdicts, the timing table (or None) and the cost model (or None) for observations."""
    models = dict(models or {})
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
        if not rm.modelled:
            rows += _not_modelled_rows(job, model, rm)
            unmodelled_spawn |= job.suite == "spawn"
            continue
        comparer = COMPARERS.get(job.suite)
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
        if not unmodelled_spawn:  # the work model needs the simulator's op counts
            cost = work_model(spawn, spawn_work(predictor), models)
        rows += timing_rows(timing, cost)
    return vd.frame(rows), timing, cost


def compare_dir(out: Path, models: dict[str, str] | None = None) -> pd.DataFrame:
    """Read <out>/observations.jsonl; write predictions.jsonl, verdicts.jsonl, timing.csv and
    cost_model.json beside it."""
    out = Path(out)
    obs = out / "observations.jsonl"
    if not obs.is_file():
        raise ForkdiffError(f"no observations in {out} ({obs.name} missing)",
                            "give the folder a `forkdiff run` or `make vm-test` wrote")
    predictor = Predictor(load_elves(out / ELF_FILE))
    df, timing, cost = compare_records(read_records(obs), models, predictor)
    save_elves(predictor.elves, out / ELF_FILE)
    with open(out / "predictions.jsonl", "w") as fh:
        for rec in predictor.all():
            fh.write(json.dumps(rec) + "\n")
    vd.write(df, out / "verdicts.jsonl")
    for name, present in (("timing.csv", timing is not None), ("cost_model.json", cost is not None)):
        if not present:
            (out / name).unlink(missing_ok=True)
    if timing is not None:
        timing.to_csv(out / "timing.csv", index=False)
    if cost is not None:
        (out / "cost_model.json").write_text(json.dumps(cost, indent=1))
    return df
