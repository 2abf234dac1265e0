"""Rows of a fault sweep run with observers (OBSERVERS=, orchestrator/run/observers.py): that
each observer ran beside the sweep, i.e. some of its iterations overlapped the sweep's forks
(a run whose observers never overlapped a fork tested nothing more than the plain sweep), and
that the observe program ended cleanly. Which observer overlapped which fork is in each
fault_outcome row's detail ("observers: ..."), read back by the report's fault strips.
Crashes are rows of every job already (run_rows.py); their message names the observer whose
task the kernel's report names (Comm: obs-<name>) and the step k."""

from __future__ import annotations

from .compare_jobs import ObservedJob, _row

RAN_RULE = "the observer's iterations overlapped the sweep's forks (guest CLOCK_MONOTONIC)"
END_RULE = "the observe program ended with status 0 (no observer killed or failed)"


def fault_detail(values: dict) -> str:
    """' | observers: swapoff 2, proc 5' for a fault record with observers, else ''."""
    obs = values.get("observers")
    if not obs:
        return ""
    return " | observers: " + ", ".join(f"{name} {n}" for name, n in obs.items())


def observer_rows(job: ObservedJob, model: str) -> list[dict]:
    rows = []
    for r in sorted(job.by("observer"), key=lambda r: str(r.get("repeat"))):
        v = r["values"]
        name = v.get("observer", "?")
        overlapped = v.get("ks_overlapped", 0) or 0
        detail = (f"{v.get('iterations')} iterations ({v.get('recorded')} recorded), "
                  f"{v.get('overlapping_iterations', 0)} of them during a fork; forks overlapped: "
                  f"{overlapped} of {v.get('forks')}"
                  + (f" (k={v.get('first_k')} to k={v.get('last_k')})" if overlapped else "")
                  + f"; seed {v.get('seed')}, pauses 0..{v.get('pause_us')} µs")
        if v.get("errors"):
            detail += (f"; {v['errors']} failed calls, the first {v.get('first_error')} "
                       f"(errno {v.get('first_errno')})")
        rows.append(_row(job, model, "observer_ran", name, "overlapped" if overlapped else "no fork overlapped",
                         "overlapped", rule=RAN_RULE, detail=detail))
    end = job.one("observers_end")
    if end:
        v = end["values"]
        ok = v.get("exit_status") == 0 and not v.get("signal")
        rows.append(_row(job, model, "observers_end", v.get("observers", ""),
                         "status 0" if ok else f"status {v.get('exit_status')}, signal {v.get('signal')}",
                         "status 0", rule=END_RULE, verdict=None if ok else "error",
                         detail="observe's records follow the sweep's" if ok else
                         "an observer was killed or failed: see the console log"))
    return rows
