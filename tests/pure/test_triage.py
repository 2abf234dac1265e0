"""Triage first (orchestrator/analysis/triage.py): the first divergence and failing rows grouped
by kind, on verdicts recorded from a real run (tests/data/kcidb-run: maps and faults with
KMEMLEAK=1 on 6.12 and the planted tests/planted/leak-anon-vma-on-chain-failure.patch on the
patched kernel: every failure of anon_vma_fork()'s anon_vma_chain allocation leaks its anon_vma)."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pandas as pd

from orchestrator.analysis import triage
from orchestrator.analysis.report import render
from orchestrator.analysis.summary import print_summary
from orchestrator.results import verdicts as vd

DATA = Path(__file__).resolve().parents[1] / "data" / "kcidb-run"


def test_first_divergence_is_the_first_leaking_step_with_its_site():
    df = vd.read(DATA / "verdicts.jsonl")
    first = triage.first_divergence(df)
    leaks = df[(df["measurement"] == "leak_after_fork") & (df["verdict"] == "mismatch")]
    first_k = min(int(k.split("=")[1]) for k in leaks["key"])
    assert (first["suite"], first["variant"], first["key"]) == ("faults", "patched", f"k={first_k}")
    assert first["site"] == "anon_vma_fork (anon_vma_chain)" and first["about"] == "anon_vma"


def test_one_group_per_kind_with_the_k_range_and_each_rule_once():
    df = vd.read(DATA / "verdicts.jsonl")
    groups = triage.groups(df)
    assert sum(g["count"] for g in groups) == len(vd.failing(df))
    leak = [g for g in groups if g["measurement"] == "leak_after_fork"]
    assert len(leak) == 1  # every leaking step is one row of the triage
    ks = sorted(int(r["key"].split("=")[1]) for r in vd.failing(df).to_dict(orient="records")
                if r["measurement"] == "leak_after_fork")
    assert leak[0]["count"] == len(ks) and leak[0]["range"] == f"k={ks[0]}..{ks[-1]}"
    assert leak[0]["about"] == "anon_vma" and leak[0]["site"] == "anon_vma_fork (anon_vma_chain)"
    out = io.StringIO()
    print_summary(df, DATA, file=out)
    text = out.getvalue()
    assert text.index("first divergence:") < text.index("forkdiff:")
    assert text.count(leak[0]["rule"][:80]) == 1  # the rule once, not per row


def test_report_opens_with_the_triage_and_folds_the_run_details(tmp_path):
    run = tmp_path / "run"
    shutil.copytree(DATA, run)
    render(run)
    html = (run / "report.html").read_text()
    assert html.index("First divergence") < html.index("<h2>Summary</h2>")
    assert html.index("First divergence") < html.index("Run details")
    assert "<details><summary>Run details" in html
    md = (run / "report.md").read_text()
    assert md.index("## Triage") < md.index("## Summary")


def test_no_failing_row_no_triage():
    df = pd.DataFrame([{c: "" for c in vd.COLUMNS} | {"verdict": "match"}])
    assert triage.first_divergence(df) is None and triage.groups(df) == []
    assert triage.key_range(["k=3", "k=3"]) == "k=3" and triage.key_range(["", "k=1"]) == "k=1"
