"""The checks a run makes without the simulator, for a kernel whose tree the simulator does not
model (simulator/runconfig.py tree_problems): what the kernel must do whatever its dup_mmap()
looks like. The model's own verdicts become one `skipped` row per job naming what is not
modelled, never a mismatch.

  maps    the parent's maps unchanged by the fork; DONTFORK VMAs absent from the child;
          WIPEONFORK VMAs present in the child and reading zero
  faults  per k: the slab objects left once the fork's frees settled (0 in every cache: a fork
          that leaves objects behind leaks, failed or absorbed); the parent's maps unchanged
          after every failed fork; the probe fork's and the whole sweep's net (0); the sweep
          reached a k the fork does not reach
  counts  nothing (every count is a prediction)
  spawn   variant vs variant only (orchestrator/analysis/compare.py leaves the work model out)
Crashes, hangs, missing final records and kmemleak reports are rows of every job already
(orchestrator/analysis/run_rows.py).
"""

from __future__ import annotations

from simulator import runconfig

from ..suite_defs import REGISTRY as SUITES
from .compare_jobs import ObservedJob, _row
from .observer_rows import observer_rows
from .rules import LEAK_RULE, _cache_counts, sweep_complete_rows

SKIP_RULE = "kernel vs simulator needs a model of this tree"


def skipped_row(job: ObservedJob, model: str, rm: runconfig.RunModel) -> dict:
    """One row for every model verdict the job does not get."""
    causes = ", ".join(f"{nm.what.removeprefix('kernel_facts.')}={nm.value}" for nm in rm.tree_not_modelled)
    others = "; ".join(nm.message() for nm in rm.not_modelled)
    detail = f"skipped (not modelled: {causes})" + (f"; also not modelled: {others}" if others else "")
    return _row(job, model, "kernel_vs_simulator", "", "", "", verdict="skipped",
                rule=SKIP_RULE, detail=detail)


def maps_rows(job: ObservedJob, model: str) -> list[dict]:
    rows = []
    layout = job.one("child_layout")
    for v in (layout["values"]["vmas"] if layout else []):
        if v["advice"] == "dontfork":
            rows.append(_row(job, model, "dontfork_absent", f"vma={v['index']}",
                             not v["present"] and not v["overlapped"], True,
                             rule="invariant: a MADV_DONTFORK VMA is not in the child"))
        elif v["advice"] == "wipeonfork":
            rows.append(_row(job, model, "wipeonfork_zero", f"vma={v['index']}",
                             bool(v["present"]) and v.get("zero") is True, True,
                             rule="invariant: a MADV_WIPEONFORK VMA is in the child and reads zero"))
    after = job.one("parent_after")
    if after:
        rows.append(_row(job, model, "parent_maps_unchanged", "", after["values"].get("unchanged"), True,
                         rule="invariant: fork() does not change the parent's maps"))
    return rows


def _leak_detail(k, v: dict, leaked: dict) -> str:
    failed = v.get("fork_result", 0) < 0
    if not leaked:
        return f"k={k} ({'failed' if failed else 'absorbed'} fork; failure site not modelled)"
    detail = (f"LEAK at k={k}: " + ", ".join(f"{n} {c}" for c, n in sorted(leaked.items()))
              + f" left after the {'failed' if failed else 'absorbed'} fork")
    if not v.get("settled", True):
        detail += f"; still there after {v.get('settle_ms', 0):.0f} ms of polling"
    return detail


def faults_rows(job: ObservedJob, model: str) -> list[dict]:
    rows = []
    cc = job.one("check_count")
    if cc and "net" in cc["values"]:
        left = {c: n for c, n in cc["values"]["net"].items() if n}
        rows.append(_row(job, model, "leak_after_fork", "probe", _cache_counts(left), "0",
                         rule=LEAK_RULE, detail="the probe: one successful fork, its child exited"))
    for r in sorted(job.by("fault"), key=lambda r: r["values"]["k"]):
        v = r["values"]
        k = v["k"]
        if "net" in v:
            leaked = {c: n for c, n in (v.get("net") or {}).items() if n > 0}
            rows.append(_row(job, model, "leak_after_fork", f"k={k}", _cache_counts(leaked), "0",
                             rule=LEAK_RULE, detail=_leak_detail(k, v, leaked)))
        if v.get("fork_result", 0) < 0:
            rows.append(_row(job, model, "parent_maps_after_failure", f"k={k}",
                             v.get("maps_unchanged"), True,
                             rule="invariant: a failed fork leaves the parent's maps unchanged",
                             detail=str(v.get("maps_diff", ""))))
    end = job.one("sweep_end")
    if end and "net" in end["values"]:
        rows.append(_row(job, model, "sweep_leak", "", _cache_counts(end["values"]["net"]), "0",
                         rule="exact: slab objects in use at the end of the sweep (settled) equal "
                              "those at its start",
                         detail=f"over {end['values'].get('failed_forks')} failed and "
                                f"{end['values'].get('absorbed_faults')} absorbed forks"))
    rows += sweep_complete_rows(job, model, end)
    return rows + observer_rows(job, model)


def rows(job: ObservedJob, model: str, rm: runconfig.RunModel) -> list[dict]:
    """The skipped row and the job's kernel-only rows (the function of this module its suite
    object names, orchestrator/suite_defs `kernel_only`; none for counts and spawn)."""
    suite = SUITES.get(job.suite)
    check = globals()[suite.kernel_only] if suite is not None and suite.kernel_only else None
    return [skipped_row(job, model, rm)] + (check(job, model) if check else [])
