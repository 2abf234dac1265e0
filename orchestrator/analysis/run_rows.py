"""Rows every job gets before its suite's rules: crashes and hangs, a missing final record, a
run config the simulator does not model (or assumed), kmemleak reports."""

from __future__ import annotations

from simulator import runconfig

from ..run.kmemleak import summary as kmemleak_summary
from ..suite_defs import REGISTRY
from .compare_jobs import ObservedJob, _row


def _error_rows(job: ObservedJob, model: str) -> list[dict]:
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
def _missing_final_rows(job: ObservedJob, model: str) -> list[dict]:
    """A guest program that stopped before its final record (its suite's, orchestrator/suite_defs)
    without an error or crash record for the job: its other rows would silently be fewer."""
    suite = REGISTRY.get(job.suite)
    final = suite.final if suite is not None else None
    if final is None or job.by(final) or job.by("error"):
        return []
    seen = ", ".join(dict.fromkeys(str(r.get("measurement")) for r in job.records))
    return [_row(job, model, "final_record", final, "missing", final, verdict="error",
                 rule="every job ends with its final record or an error record",
                 detail=f"{job.program} ended without its final record {final} "
                        f"(records: {seen})")]


def _not_modelled_rows(job: ObservedJob, model: str, rm: runconfig.RunModel) -> list[dict]:
    """The run's kernel config or fault settings are outside what the simulator models: one
    error per cause, naming it and what to do, instead of predictions for another kernel."""
    return [_row(job, model, "run_config", nm.what, nm.value, nm.modelled, verdict="error",
                 rule="the simulator must model the run's kernel config and fault settings",
                 detail=nm.message())
            for nm in rm.not_modelled]


def _assumed_rows(jobs: list[ObservedJob]) -> list[dict]:
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


# --- kmemleak (orchestrator/run/kmemleak.py): one row per scanned sweep -----------------------------
def _kmemleak_rows(job: ObservedJob, model: str) -> list[dict]:
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
