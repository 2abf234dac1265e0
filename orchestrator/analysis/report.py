"""Render a results folder into report.html, report.md, junit.xml and plots/*.png.

Reads what compare wrote into the folder: verdicts.jsonl (orchestrator/results/verdicts.py), and when the
spawn suite ran, timing.csv (orchestrator/analysis/timing.py's improvement table) and cost_model.json
(the fitted model and its per-VMA-count prediction error). The seed thread's table ships with
the package (orchestrator/data/seed_fork_table.json)."""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

import pandas as pd
from jinja2 import Environment, PackageLoader, select_autoescape

from ..results import verdicts as vd
from ..results.folder import REPORT_HTML, VERDICTS_JSONL, read_meta
from . import triage

PLOTS = ("forks_per_s.png", "improvement.png")


def seed_table() -> dict:
    return json.loads(resources.files("orchestrator").joinpath("data", "seed_fork_table.json").read_text())


def summary(df: pd.DataFrame) -> pd.DataFrame:
    """Verdict counts per (axis, suite, variant)."""
    if df.empty:
        return pd.DataFrame(columns=["axis", "suite", "variant", *vd.VERDICTS, "total"])
    counts = (df.groupby(["axis", "suite", "variant", "verdict"]).size()
              .unstack("verdict", fill_value=0).reindex(columns=list(vd.VERDICTS), fill_value=0))
    counts["total"] = counts.sum(axis=1)
    return counts.reset_index()


def is_reference_run(meta: dict) -> bool:
    """True when the run's baseline kernel is the tree as it is on a tree whose dup_mmap()
    already uses __mt_dup (7.x with PATCHES=, orchestrator/prepare/variants.py; run.json's
    "reference kernel"): its forks/s beside the seed's baseline is not the pre-series loop."""
    return isinstance(meta, dict) and bool(meta.get("reference kernel"))


def seed_comparison(timing: pd.DataFrame | None) -> pd.DataFrame:
    """The seed's table with ours beside it, one row per seed VMA count."""
    seed = seed_table()
    rows = []
    ours = timing.set_index("vmas") if timing is not None and not timing.empty else None
    for i, n in enumerate(seed["vmas"]):
        row = {"vmas": n, "seed_baseline_per_10s": seed["baseline"][i],
               "seed_patched_per_10s": seed["patched"][i], "seed_improvement_pct": seed["improvement_pct"][i]}
        if ours is not None and n in ours.index:
            r = ours.loc[n]
            row.update({"our_baseline_forks_per_s": r["baseline_forks_per_s"],
                        "our_patched_forks_per_s": r["patched_forks_per_s"],
                        "our_improvement_pct": r["improvement_pct"],
                        "our_improvement_ci": r["improvement_ci"], "welch_p": r["welch_p"]})
        rows.append(row)
    return pd.DataFrame(rows)


LEAK_MEASUREMENTS = ("leak_after_fork", "failed_fork_allocs")
_CACHE_COUNT = re.compile(r"(\S+) ([+-]\d+)")


def fault_strips(df: pd.DataFrame) -> list[dict]:
    """Per (variant, model, scenario): the sweep as a list of cells in k order; a cell is
    marked `leak` when the fork at that k left objects behind or allocated other than
    predicted (orchestrator.analysis.compare.leak_rows)."""
    f = df[(df["measurement"] == "fault_outcome") & df["key"].str.startswith("k=")].copy()
    if f.empty:
        return []
    f["k"] = f["key"].str[2:].astype(int)
    lk = df[df["measurement"].isin(LEAK_MEASUREMENTS) & (df["verdict"] != "match")]
    leaky = {(r.variant, r.model, r.scenario, r.key): r.observed for r in lk.itertuples()}
    strips = []
    for (variant, model, scenario), grp in f.groupby(["variant", "model", "scenario"], sort=True):
        cells = [{"k": int(r.k), "observed": r.observed, "predicted": r.predicted, "verdict": r.verdict,
                  "leak": leaky.get((variant, model, scenario, r.key), ""),
                  # a page-table check (FAULTS=...,page): the predicted failure is in copy_page_range
                  "page": str(getattr(r, "detail", "") or "").startswith("copy_page_range"),
                  # OBSERVERS=: the observers' iterations that overlapped this fork
                  "observers": _observers_of(getattr(r, "detail", ""))}
                 for r in grp.sort_values("k").itertuples()]
        strips.append({"variant": variant, "model": model, "scenario": scenario, "cells": cells,
                       "mismatches": sum(c["verdict"] != "match" for c in cells),
                       "leaks": sum(bool(c["leak"]) for c in cells),
                       "page_checks": sum(c["page"] for c in cells),
                       "observed_ks": sum(bool(c["observers"]) for c in cells),
                       "observers": sorted({n for c in cells for n in c["observers"]})})
    return strips


def _observers_of(detail) -> dict[str, int]:
    """{observer: iterations} from a fault_outcome detail's ' | observers: a 1, b 0' part
    (orchestrator.analysis.observer_rows.fault_detail); only those that overlapped."""
    _, sep, tail = str(detail or "").partition(" | observers: ")
    if not sep:
        return {}
    out = {}
    for part in tail.split(", "):
        name, _, n = part.rpartition(" ")
        if name and n.isdigit() and int(n):
            out[name] = int(n)
    return out


def leak_table(df: pd.DataFrame) -> list[dict]:
    """Per (kernel, model, scenario, cache): forks that left objects of the cache behind, how
    many objects in all, the first such k, and the sweep's net over its whole run."""
    rows: dict[tuple, dict] = {}

    def entry(r, cache: str) -> dict:
        key = (r.variant, r.model, r.scenario, cache)
        return rows.setdefault(key, {"variant": r.variant, "model": r.model, "scenario": r.scenario,
                                     "cache": cache, "leaking_forks": 0, "objects": 0,
                                     "first_k": "", "sweep_net": "", "observers": ""})

    # OBSERVERS=: which observers overlapped each fork (the fault_outcome rows' detail)
    fo = df[df["measurement"] == "fault_outcome"]
    seen = {(r.variant, r.model, r.scenario, r.key): _observers_of(getattr(r, "detail", ""))
            for r in fo.itertuples()}

    for r in df[df["measurement"] == "leak_after_fork"].itertuples():
        for cache, n in _CACHE_COUNT.findall(r.observed):
            e = entry(r, cache)
            e["leaking_forks"] += 1
            e["objects"] += int(n)
            during = seen.get((r.variant, r.model, r.scenario, r.key)) or {}
            names = set(filter(None, e["observers"].split(", "))) | set(during)
            e["observers"] = ", ".join(sorted(names))
            if e["first_k"] == "":
                e["first_k"] = r.key
    for r in df[df["measurement"] == "sweep_leak"].itertuples():
        for cache, n in _CACHE_COUNT.findall(r.observed):
            entry(r, cache)["sweep_net"] = n
    return sorted(rows.values(), key=lambda e: (e["variant"], e["scenario"], e["cache"]))


def _plots(cmp: pd.DataFrame, out: Path) -> list[str]:
    if "our_baseline_forks_per_s" not in cmp or cmp["our_baseline_forks_per_s"].isna().all():
        return []
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plots = out / "plots"
    plots.mkdir(exist_ok=True)
    ours = cmp.dropna(subset=["our_baseline_forks_per_s"])

    def save(name: str, ylabel: str, draw) -> None:
        fig, ax = plt.subplots(figsize=(7, 4))
        draw(ax)
        ax.set_xscale("log")
        ax.set_xlabel("VMAs in the forking process")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(plots / name, dpi=100)
        plt.close(fig)

    def rates(ax) -> None:
        ax.plot(ours["vmas"], ours["our_baseline_forks_per_s"], "o-", label="baseline (ours, guest)")
        ax.plot(ours["vmas"], ours["our_patched_forks_per_s"], "s-", label="patched (ours, guest)")
        ax.set_yscale("log")

    def improvement(ax) -> None:
        ax.errorbar(ours["vmas"], ours["our_improvement_pct"], yerr=ours["our_improvement_ci"],
                    fmt="o-", capsize=3, label="ours (guest, 95% CI)")
        ax.plot(cmp["vmas"], cmp["seed_improvement_pct"], "x--", label="seed thread (v4 10/10)")

    save(PLOTS[0], "forks/s", rates)
    save(PLOTS[1], "fork() improvement, patched vs baseline (%)", improvement)
    return [f"plots/{p}" for p in PLOTS]


def junit_xml(df: pd.DataFrame) -> str:
    """One <testsuite> per (axis, suite, variant), one <testcase> per verdict row."""
    parts = ['<?xml version="1.0" encoding="UTF-8"?>', "<testsuites>"]
    for (axis, suite, variant), grp in df.groupby(["axis", "suite", "variant"], sort=True):
        fails = int((grp["verdict"] == "mismatch").sum())
        errs = int(grp["verdict"].isin(["error", "crashed", "hung"]).sum())
        skips = int((grp["verdict"] == "skipped").sum())
        parts.append(f"<testsuite name={quoteattr(f'{suite}.{variant}.{axis}')} tests=\"{len(grp)}\" "
                     f"failures=\"{fails}\" errors=\"{errs}\" skipped=\"{skips}\">")
        for r in grp.itertuples():
            name = f"{r.scenario}.{r.measurement}" + (f"[{r.key}]" if r.key else "")
            parts.append(f"<testcase classname={quoteattr(f'{suite}.{variant}')} name={quoteattr(name)}>")
            msg = f"observed={r.observed} predicted={r.predicted} rule={r.rule}"
            if r.verdict == "mismatch":
                parts.append(f"<failure message={quoteattr(msg)}>{escape(str(r.detail))}</failure>")
            elif r.verdict in ("error", "crashed", "hung"):
                parts.append(f"<error type={quoteattr(r.verdict)} message={quoteattr(msg)}>"
                             f"{escape(str(r.detail))}</error>")
            elif r.verdict == "skipped":
                parts.append(f"<skipped message={quoteattr(str(r.detail))}/>")
            parts.append("</testcase>")
        parts.append("</testsuite>")
    parts.append("</testsuites>")
    return "\n".join(parts) + "\n"


def insn_view(insn: dict) -> list[dict]:
    """Per kernel of insn_model.json (orchestrator.analysis.insn_rows): band and its source,
    the run's rows, each profiled layout's LOLO error, and where fork's instructions go per
    seed VMA count: measured (plugin) against modelled, per function."""
    out = []
    for variant, k in insn["kernels"].items():
        m = k["model"]
        spawn = sorted((p for p in m["points"] if p["layout"] == "spawn"), key=lambda p: p["vmas"])
        funcs = sorted({g for p in spawn for g, v in p["measured_by_function"].items() if v},
                       key=lambda g: -max(p["measured_by_function"].get(g, 0) for p in spawn))
        lolo = []
        for p in sorted(m["points"], key=lambda p: (p["layout"] != "spawn", p["layout"], p["vmas"])):
            byf = p.get("lolo_by_function_pct") or {}
            worst = max(byf.items(), key=lambda kv: abs(kv[1])) if byf else ("", 0.0)
            lolo.append({"layout": p["layout"], "vmas": p["vmas"], "insns": p["measured_insns"],
                         "lolo": p["lolo_error_pct"], "worst": worst[0], "worst_pct": worst[1]})
        out.append({"variant": variant, "model_name": k["model_name"], "band_pct": k["band_pct"],
                    "source": k["band_source"], "wall": k.get("wall") or {},
                    "fitted_on": m["fitted_on"], "lolo": lolo, "functions": funcs,
                    "counts": [{"vmas": p["vmas"], "total": p["measured_insns"],
                                "fitted_total": p["fitted_insns"],
                                "measured": p["measured_by_function"],
                                "fitted": p["fitted_by_function"]} for p in spawn],
                    "errors": [e for e in insn["errors"] if e["variant"] == variant]})
    return out


def render(out: Path, db: Path | str | None = None) -> dict:
    """Render the folder's report; returns {"html", "md", "junit", "failing", "total"}.
    db: the results database whose other runs of this tree the report shows (default: the
    automatic one, orchestrator/analysis/history_db.py)."""
    from .history_view import report_section

    out = Path(out)
    df = vd.read(out / VERDICTS_JSONL)
    timing = pd.read_csv(out / "timing.csv") if (out / "timing.csv").exists() else None
    cost = json.loads((out / "cost_model.json").read_text()) if (out / "cost_model.json").exists() else None
    insn = insn_view(json.loads((out / "insn_model.json").read_text())) \
        if (out / "insn_model.json").exists() else None
    meta = read_meta(out)
    cmp = seed_comparison(timing)
    plots = _plots(cmp, out)
    bad = vd.failing(df)
    first = triage.first_divergence(df)
    ctx = {
        "meta": meta,
        "passed": bad.empty,
        "summary": summary(df).to_dict(orient="records"),
        "verdicts": list(vd.VERDICTS),
        "seed": seed_table(),
        "comparison": cmp.to_dict(orient="records"),
        "has_ours": "our_baseline_forks_per_s" in cmp and not cmp["our_baseline_forks_per_s"].isna().all(),
        "reference": is_reference_run(meta),
        "plots": plots,
        "cost": cost,
        "insn": insn,
        "strips": fault_strips(df),
        "leaks": leak_table(df),
        "leak_checks": int((df["measurement"].isin(("leak_after_fork", "sweep_leak"))).sum()),
        "failing": bad.to_dict(orient="records"),
        "first": first,
        "first_text": triage.describe_first(first) if first else "",
        "groups": [{**g, "line": triage.describe(g)} for g in triage.groups(df)],
        "crashes": df[df["verdict"].isin(["crashed", "hung"])].to_dict(orient="records"),
        "total": len(df),
        "history": report_section(out, db),
    }
    env = Environment(loader=PackageLoader("orchestrator", "templates"),
                      autoescape=select_autoescape(["html"]), trim_blocks=True, lstrip_blocks=True)
    env.filters["num"] = _num
    (out / REPORT_HTML).write_text(env.get_template("report.html.j2").render(**ctx))
    (out / "report.md").write_text(env.get_template("report.md.j2").render(**ctx))
    (out / "junit.xml").write_text(junit_xml(df))
    return {"html": out / REPORT_HTML, "md": out / "report.md", "junit": out / "junit.xml",
            "failing": len(bad), "total": len(df)}


def _num(value, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "–"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)
