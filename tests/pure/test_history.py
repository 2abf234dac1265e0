"""The results database and `forkdiff history` (orchestrator/analysis/history_db.py,
history_record.py, history_view.py, orchestrator/commands/history.py), on three REAL results
folders of two trees, recorded into a temporary database through the commands that record them:
  tests/data/kcidb-run           6.12 (Debian linux-source-6.12), maps + faults with KMEMLEAK=1
                                 and the planted leak-anon-vma-on-chain-failure.patch: FAIL
  tests/data/kcidb-spawn         6.12, spawn at 21 and 421 VMAs on both perf kernels: PASS
  tests/data/spawn-72-reference  7.2 (Debian linux-source-7.2), spawn at 1,621 and 6,421 VMAs
and two REAL runs of one key whose second diverged (tests/data/model-pass, model-fail).
Every expected value is derived from the folders' own files (run.json, kernels/*.json,
observations.jsonl, verdicts.jsonl), never copied from the command's output. Where a test
makes records of its own (the divergence rule) it says FAKE."""

from __future__ import annotations

import csv
import json
import multiprocessing
import shutil
import sqlite3
from pathlib import Path

import pytest

from orchestrator.analysis import history_db, history_view
from orchestrator.analysis.history_record import read_run
from orchestrator.analysis.kcidb import kernel_of
from orchestrator.analysis.report import render
from orchestrator.cli import main
from orchestrator.results import verdicts as vd

DATA = Path(__file__).resolve().parents[1] / "data"
FOLDERS = ("kcidb-run", "kcidb-spawn", "spawn-72-reference")


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> tuple[Path, dict[str, Path]]:
    """The three folders copied and recorded into a fresh database by the commands a user runs:
    `forkdiff report --db` for the two with verdicts, `forkdiff compare --db` for the one
    without (its comparison is made now, from its observations)."""
    root = tmp_path_factory.mktemp("history")
    db = root / "results.sqlite"
    dirs = {}
    for name in FOLDERS:
        dirs[name] = root / name
        shutil.copytree(DATA / name, dirs[name])
    assert not (dirs["spawn-72-reference"] / "verdicts.jsonl").exists()
    assert main(["compare", str(dirs["spawn-72-reference"]), "--db", str(db)]) == 0
    assert main(["report", str(dirs["kcidb-run"]), "--db", str(db)]) == 1  # a FAIL
    assert main(["report", str(dirs["kcidb-spawn"]), "--db", str(db)]) == 0
    return db, dirs


def _expected(folder: Path) -> dict:
    """What the folder itself says: tree, version, per (kernel, suite) verdict and counts,
    forks/s per kernel and VMA count (mean over repeats), the run id."""
    meta = json.loads((folder / "run.json").read_text())
    package, version = meta["tree_identity"].split(":")[1:]
    df = vd.read(folder / "verdicts.jsonl")
    verdicts: dict[tuple, dict] = {}
    for r in df.to_dict(orient="records"):
        e = verdicts.setdefault((*kernel_of(r), r["suite"]), {"fail": False, "match": 0, "mismatch": 0})
        e["fail"] |= r["verdict"] in vd.FAILING
        e["match"] += r["verdict"] == "match"
        e["mismatch"] += r["verdict"] == "mismatch"
    rates: dict[tuple, list[float]] = {}
    ids = set()
    for line in (folder / "observations.jsonl").read_text().splitlines():
        rec = json.loads(line)
        ids.add(rec["run_id"])
        if rec["measurement"] == "spawn" and not rec["scenario"].get("calibration"):
            rates.setdefault((rec["variant"], rec["profile"], rec["values"]["map_count"]), []).append(rec["value"])
    return {"tree": f"debian:{package}", "version": version, "verdicts": verdicts,
            "rates": {k: sum(v) / len(v) for k, v in rates.items()}, "run_id": min(ids)}


def test_history_shows_three_runs_of_two_trees_with_verdicts_and_rates_side_by_side(recorded, capsys, tmp_path):
    db, dirs = recorded
    capsys.readouterr()
    assert main(["history", "--db", str(db), "--out", str(tmp_path / "h")]) == 0
    text = capsys.readouterr().out
    expected = {name: _expected(dirs[name]) for name in FOLDERS}
    assert len({e["tree"] for e in expected.values()}) == 2
    assert text.startswith(f"3 runs, 2 trees in {db}")
    with open(tmp_path / "h" / "history.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["run_id"] for r in rows} == {e["run_id"] for e in expected.values()}
    for name, e in expected.items():
        mine = [r for r in rows if r["run_id"] == e["run_id"]]
        assert {(r["tree"], r["tree_version"]) for r in mine} == {(e["tree"], e["version"])}
        for (variant, profile, suite), v in e["verdicts"].items():
            (row,) = [r for r in mine if (r["variant"], r["profile"], r["suite"]) == (variant, profile, suite)]
            assert row["verdict"] == ("FAIL" if v["fail"] else "PASS"), (name, variant, suite)
            assert (int(row["match"]), int(row["mismatch"])) == (v["match"], v["mismatch"])
        for (variant, profile, n), rate in e["rates"].items():
            (row,) = [r for r in mine if (r["variant"], r["profile"], r["suite"]) == (variant, profile, "spawn")]
            assert float(row[f"forks_per_s@{n}"]) == pytest.approx(rate, rel=1e-9)
            # the terminal table: this kernel's line carries its verdict and its rate
            line = next(x for x in text.splitlines() if e["run_id"] in x and f" {variant}/{profile} " in x)
            assert f"{rate:,.1f}" in line
            assert (" PASS " in line) == (row["verdict"] == "PASS")
    # the kernel spawn's work model is fitted on has rates and no verdict of its own
    fitted = [r for r in rows if r["verdict"] == "-"]
    assert fitted and all(r["suite"] == "spawn" for r in fitted)
    # both trees' spawn rates are in the table, each in its own VMA count's column
    counts = {n for e in expected.values() for (_, _, n) in e["rates"]}
    assert {f"forks/s@{n}" for n in counts} <= set(text.splitlines()[1].split())
    png = (tmp_path / "h" / "history.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    # no run of a key passed before it failed: no divergence; the leak FAIL failed from its start
    leak = expected["kcidb-run"]
    assert "first diverged: none" in text
    (from_start,) = [x for x in text.splitlines() if x.startswith("failing from its first run")]
    assert leak["run_id"] in from_start and "patched/faults faults" in from_start
    assert "leak-anon-vma-on-chain-failure" in from_start


def test_a_run_recorded_again_replaces_its_rows(recorded, tmp_path):
    db, dirs = recorded
    before = {t: len(f) for t, f in history_db.load(db).items()}
    assert before["runs"] == 3
    assert main(["report", str(dirs["kcidb-run"]), "--db", str(db)]) == 1
    assert main(["history", "--db", str(db), "--add", str(dirs["kcidb-spawn"])]) == 0
    after = {t: len(f) for t, f in history_db.load(db).items()}
    assert after == before


def _record_many(args: tuple[str, list[dict]]) -> None:
    db, recs = args
    for _ in range(5):
        for rec in recs:
            history_db.record(Path(db), rec)


def test_concurrent_recorders_leave_a_whole_database(recorded, tmp_path):
    """Four processes record the same three runs five times each, at once, into one new file."""
    _, dirs = recorded
    recs = [read_run(dirs[name]) for name in FOLDERS]
    db = tmp_path / "concurrent.sqlite"
    with multiprocessing.get_context("fork").Pool(4) as pool:
        pool.map(_record_many, [(str(db), recs[i:] + recs[:i]) for i in range(4)])
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 3
    assert conn.execute("SELECT COUNT(*) FROM results").fetchone()[0] == sum(len(r["results"]) for r in recs)
    assert conn.execute("SELECT COUNT(*) FROM rates").fetchone()[0] == sum(len(r["rates"]) for r in recs)


def test_a_real_divergence_names_the_run_and_the_change(tmp_path, capsys):
    """REAL runs (tests/data/model-pass, model-fail): the same command twice on 6.12.118,
    `SUITES=faults SCENARIOS=anon-touched-21 VARIANTS=patched`, the second with MODEL=baseline
    (the cached patched kernel compared with the other model: the planted-divergence way).
    Same tree, patches (none), kernel and suite: the second run is where the line diverged."""
    db = tmp_path / "real.sqlite"
    runs = {n: _expected(DATA / f"model-{n}") for n in ("pass", "fail")}
    kernels = {n: json.loads((DATA / f"model-{n}" / "kernels" / "patched-faults.json").read_text())
               for n in runs}
    models = {n: json.loads((DATA / f"model-{n}" / "run.json").read_text())["models"] for n in runs}
    assert kernels["pass"]["build_key"] == kernels["fail"]["build_key"] and models["pass"] != models["fail"]
    assert [v["fail"] for v in runs["pass"]["verdicts"].values()] == [False]
    assert [v["fail"] for v in runs["fail"]["verdicts"].values()] == [True]
    # recorded in the other order: the rule goes by when the runs started, not by recording
    assert main(["history", "--db", str(db), "--add", str(DATA / "model-fail"), str(DATA / "model-pass")]) == 0
    text = capsys.readouterr().out
    (line,) = [x for x in text.splitlines() if x.startswith("first diverged:")]
    assert f"FAIL in run {runs['fail']['run_id']}" in line and f"after PASS in run {runs['pass']['run_id']}" in line
    mismatches = runs["fail"]["verdicts"][("patched", "faults", "faults")]["mismatch"]
    assert f"{mismatches} mismatches" in line
    assert "same kernel (cache key)" in line and f"models: {models['pass']} -> {models['fail']}" in line


def test_first_divergence_is_the_first_fail_after_passes_of_the_same_key(recorded, tmp_path):
    """FAKE runs: the real kcidb-spawn record copied under three new run ids and start times,
    its patched kernel's verdict set to PASS, FAIL, FAIL (the divergence rule, not a run)."""
    _, dirs = recorded
    real = read_run(dirs["kcidb-spawn"])
    db = tmp_path / "fake.sqlite"
    for i, verdict in enumerate(("PASS", "FAIL", "FAIL")):
        rec = json.loads(json.dumps(real))
        rec["run_id"] = f"fake-{i}"
        rec["started"] = f"2026-12-0{i + 1}T00:00:00+00:00"
        for r in rec["results"]:
            if r["variant"] == "patched":
                r["verdict"] = verdict
        history_db.record(db, rec)
    div = history_view.divergences(history_view.frame(history_db.load(db)))
    assert div["first"]["run_id"] == "fake-1" and div["lines"][0]["last_pass"]["run_id"] == "fake-0"
    text = "\n".join(history_view.divergence_text(div))
    assert text.startswith("first diverged:") and "FAIL in run fake-1" in text
    assert "same kernel (cache key)" in text  # the kernel key did not change: not the kernel


def test_the_report_shows_its_trees_history_when_the_database_has_other_runs(recorded, tmp_path):
    db, dirs = recorded
    spawn = tmp_path / "spawn"
    shutil.copytree(dirs["kcidb-spawn"], spawn)
    render(spawn, db)  # the 6.12 leak run is another run of the same tree
    html = (spawn / "report.html").read_text()
    assert "History of this tree" in html and (spawn / "plots" / "history.png").is_file()
    assert _expected(dirs["kcidb-run"])["run_id"] in html
    assert "failing from its first run" in html
    assert "History of this tree" in (spawn / "report.md").read_text()
    only = tmp_path / "only72"
    shutil.copytree(dirs["spawn-72-reference"], only)
    render(only, db)  # the only 7.2 run: nothing to show
    assert "History of this tree" not in (only / "report.html").read_text()


def test_bad_databases_are_clear_errors(recorded, tmp_path, capsys):
    _, dirs = recorded
    assert main(["history", "--db", str(tmp_path / "none.sqlite")]) == 2
    assert "no results database at" in capsys.readouterr().err
    junk = tmp_path / "junk.sqlite"
    junk.write_text("not a database\n" * 100)
    assert main(["history", "--db", str(junk)]) == 2
    err = capsys.readouterr().err
    assert str(junk) in err and "move" in err
    # a run is never failed by its database: compare says it did not record, same exit code
    run = tmp_path / "run"
    shutil.copytree(dirs["kcidb-spawn"], run)
    assert main(["report", str(run), "--db", str(junk)]) == 0
    assert "history: not recorded" in capsys.readouterr().err
