"""`forkdiff export kcidb` (orchestrator/analysis/kcidb.py) on a results folder recorded from a REAL run,
checked with kcidb-io's own validator (kcidb_io.schema.LATEST).

tests/data/kcidb-run was written by a real `make vm-test` on this project's machine (copied
from its OUT= folder: run.json, kernels/, observations.jsonl, verdicts.jsonl; nothing edited):

    SUITES="maps faults" SCENARIOS=anon-touched-21 KMEMLEAK=1 \\
        PATCHES=tests/planted/leak-anon-vma-on-chain-failure.patch make vm-test

so the baseline kernel (the tree + patches/baseline/) passes everything, and the patched kernel
(the tree + the planted patch, which forgets an anon_vma when anon_vma_fork()'s
anon_vma_chain allocation fails) leaks: leak_after_fork and sweep_leak mismatches and a
kmemleak report (`crashed`). Tests that add rows of their own to a copy of it say so (FAKE)."""

from __future__ import annotations

import contextlib
import copy
import hashlib
import io
import json
import shutil
import subprocess
from pathlib import Path

import jsonschema
import pytest
from kcidb_io.schema import LATEST

from orchestrator import cli
from orchestrator.analysis import kcidb
from orchestrator.errors import ForkdiffError

REPO = Path(__file__).resolve().parents[2]
RECORDED = REPO / "tests" / "data" / "kcidb-run"
PLANTED = REPO / "tests" / "planted" / "leak-anon-vma-on-chain-failure.patch"
BASELINE_PATCHES = sorted((REPO / "patches" / "baseline").glob("*.patch"))


def forkdiff(*args: str) -> subprocess.CompletedProcess:
    """The forkdiff command line, in this process (orchestrator.cli.main: its exit status, what
    it printed)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = cli.main(list(args))
    return subprocess.CompletedProcess(["forkdiff", *args], rc, out.getvalue(), err.getvalue())


def rows_of(folder: Path) -> list[dict]:
    return [json.loads(x) for x in (folder / "verdicts.jsonl").read_text().splitlines() if x.strip()]


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """A copy of the recorded folder (the export writes kcidb.json into it)."""
    d = tmp_path / "run"
    shutil.copytree(RECORDED, d)
    return d


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> dict:
    """The CLI's export of the recorded folder."""
    d = tmp_path_factory.mktemp("exported") / "run"
    shutil.copytree(RECORDED, d)
    r = forkdiff("export", "kcidb", str(d))
    assert r.returncode == 0, r.stderr
    assert "valid under KCIDB schema" in r.stdout
    return json.loads((d / "kcidb.json").read_text())


def shell_patchset_hash(patches: list[Path]) -> str:
    """The schema's own definition, run as written: sha256sum *.patch | cut -c-64 | sha256sum."""
    if not patches:
        return ""
    cmd = "sha256sum " + " ".join(f"'{p}'" for p in patches) + " | cut -c-64 | sha256sum | cut -c-64"
    return subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, check=True).stdout.strip()


# ----------------------------------------------------------------- valid under kcidb-io
def test_export_of_a_real_run_is_valid_under_kcidb_ios_latest_schema(exported):
    LATEST.validate_exactly(exported)  # kcidb-io's own validator; raises when invalid
    assert LATEST.is_valid(exported)
    assert exported["version"] == {"major": LATEST.major, "minor": LATEST.minor}


def test_checkouts_are_tree_plus_patch_set_with_kcidbs_patchset_hash(exported):
    by_hash = {c["patchset_hash"]: c for c in exported["checkouts"]}
    # two patch sets in this run: the baseline patch, and the planted patch (PATCHES=)
    assert set(by_hash) == {shell_patchset_hash(BASELINE_PATCHES), shell_patchset_hash([PLANTED])}
    assert kcidb.patchset_hash([]) == ""
    planted = by_hash[shell_patchset_hash([PLANTED])]
    assert planted["misc"]["patches"] == [{"name": PLANTED.name,
                                          "sha256": hashlib.sha256(PLANTED.read_bytes()).hexdigest()}]
    run = json.loads((RECORDED / "run.json").read_text())
    for c in exported["checkouts"]:
        assert c["origin"] == "forkdiff" and c["id"].startswith("forkdiff:") and c["valid"] is True
        assert c["misc"]["tree_identity"] == run["tree_identity"]
        assert c["tree_name"] == "debian-linux-source-6.12"


def test_one_build_per_kernel_linked_to_its_checkout(exported):
    recs = {p.stem: json.loads(p.read_text()) for p in (RECORDED / "kernels").glob("*.json")}
    assert len(exported["builds"]) == len(recs) == 2
    checkouts = {c["id"]: c for c in exported["checkouts"]}
    for b in exported["builds"]:
        rec = recs[f"{b['misc']['variant']}-{b['misc']['profile']}"]
        want = shell_patchset_hash(BASELINE_PATCHES if rec["variant"] == "baseline" else [PLANTED])
        assert checkouts[b["checkout_id"]]["patchset_hash"] == want
        assert b["status"] == "PASS" and b["architecture"] == "x86_64"
        assert b["compiler"] == rec["compiler"] and b["compiler"].startswith("gcc")
        assert b["config_name"] == "tinyconfig+base+faults"
        assert b["misc"]["config_sha256"] == rec["config_sha256"]
        # the observations were made on this .config (each record carries the booted one's hash)
        seen = {json.loads(x)["kernel_config"]["sha256"]
                for x in (RECORDED / "observations.jsonl").read_text().splitlines()
                if f'"variant":"{rec["variant"]}"' in x and '"kernel_config":{' in x}
        assert seen == {rec["config_sha256"]}


def test_tests_group_the_verdict_rows_and_statuses_follow_the_verdicts(exported):
    rows = rows_of(RECORDED)
    groups: dict[tuple, list[str]] = {}
    for r in rows:
        path = f"forkdiff.{r['suite']}.{r['scenario']}.{r['measurement']}"
        groups.setdefault((r["variant"], path), []).append(r["verdict"])
    builds = {b["id"]: b["misc"]["variant"] for b in exported["builds"]}
    got = {(builds[t["build_id"]], t["path"]): t for t in exported["tests"]}
    assert set(got) == set(groups)
    assert sum(t["misc"]["comparisons"] for t in exported["tests"]) == len(rows)
    for key, verdicts in groups.items():
        failing = {"mismatch", "crashed"} & set(verdicts)
        assert got[key]["status"] == ("FAIL" if failing else "PASS"), key
    # the planted leak: the patched kernel fails exactly the leak checks and kmemleak
    fails = {p for (v, p), t in got.items() if t["status"] == "FAIL"}
    assert fails == {f"forkdiff.faults.anon-touched-21.{m}"
                     for m in ("leak_after_fork", "sweep_leak", "kmemleak")}
    assert all(v == "patched" for (v, _p), t in got.items() if t["status"] == "FAIL")


def test_a_kernel_report_is_the_log_excerpt_within_the_schemas_limit(exported):
    t = next(t for t in exported["tests"] if t["path"].endswith(".kmemleak") and t["status"] == "FAIL")
    assert "unreferenced object" in t["log_excerpt"] and "anon_vma_fork" in t["log_excerpt"]
    leak = next(t for t in exported["tests"] if t["path"].endswith(".leak_after_fork")
                and t["status"] == "FAIL")
    assert "LEAK at k=" in leak["log_excerpt"] and "anon_vma +1" in leak["log_excerpt"]
    limit = LATEST.json["$defs"]["test"]["properties"]["log_excerpt"]["maxLength"]
    assert limit == kcidb.LOG_EXCERPT_MAX
    assert all(len(t.get("log_excerpt", "")) <= limit for t in exported["tests"])
    assert not any("log_excerpt" in t for t in exported["tests"] if t["status"] == "PASS")


def test_every_verdict_maps_to_a_status_of_the_schema():
    enum = LATEST.json["$defs"]["status"]["enum"]
    from orchestrator.results.verdicts import VERDICTS

    assert set(kcidb.STATUS) == set(VERDICTS)
    assert set(kcidb.STATUS.values()) <= set(enum)
    assert list(kcidb.PRIORITY) == enum  # the schema lists statuses in priority order


# ----------------------------------------------------------------- refused when broken
@pytest.mark.parametrize("name, breaking", [
    ("build without origin", lambda d: d["builds"][0].pop("origin")),
    ("test without build_id", lambda d: d["tests"][0].pop("build_id")),
    ("unknown status", lambda d: d["tests"][0].__setitem__("status", "BROKEN")),
    ("forkdiff's verdict as status", lambda d: d["tests"][0].__setitem__("status", "mismatch")),
    ("path with a space", lambda d: d["tests"][0].__setitem__("path", "forkdiff.maps.a b")),
    ("log excerpt over the limit", lambda d: d["tests"][0].__setitem__("log_excerpt", "x" * 16385)),
    ("id without origin", lambda d: d["checkouts"][0].__setitem__("id", "no-origin-here")),
    ("patchset_hash not sha256", lambda d: d["checkouts"][0].__setitem__("patchset_hash", "abc")),
    ("null field", lambda d: d["builds"][0].__setitem__("compiler", None)),
    ("other major version", lambda d: d["version"].__setitem__("major", LATEST.major - 1)),
])
def test_a_broken_report_is_refused(exported, name, breaking):
    kcidb.validate(exported)  # as exported: accepted
    broken = copy.deepcopy(exported)
    breaking(broken)
    with pytest.raises(jsonschema.exceptions.ValidationError):
        LATEST.validate_exactly(broken)
    with pytest.raises(ForkdiffError, match="not valid under schema v"):
        kcidb.validate(broken)


def test_a_value_the_schema_refuses_stops_the_export_and_writes_nothing(run_dir):
    r = forkdiff("export", "kcidb", str(run_dir), "--git-url", "git://example.invalid/linux.git")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "not valid under schema" in r.stderr and "git_repository_url" in r.stderr
    assert not (run_dir / "kcidb.json").exists()


# ----------------------------------------------------------------- deterministic ids
def test_the_same_folder_exported_twice_gives_the_same_bytes(run_dir, tmp_path):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    for dest in (a, b):
        assert forkdiff("export", "kcidb", str(run_dir), "-o", str(dest)).returncode == 0
    assert a.read_bytes() == b.read_bytes()
    ids = [o["id"] for k in ("checkouts", "builds", "tests") for o in json.loads(a.read_text())[k]]
    assert len(ids) == len(set(ids))


def _shard(src: Path, dest: Path, suites: set[str]) -> Path:
    """A shard-like folder: the same kernels and run.json, the rows and observations of some
    suites only (as a sharded run splits its jobs)."""
    shutil.copytree(src, dest)
    for name in ("verdicts.jsonl", "observations.jsonl"):
        keep = [x for x in (src / name).read_text().splitlines()
                if x.strip() and json.loads(x)["suite"] in suites]
        (dest / name).write_text("\n".join(keep) + "\n")
    return dest


def test_shards_give_the_same_ids_for_the_same_objects(run_dir, tmp_path):
    whole = kcidb.build_report(run_dir)
    maps = kcidb.build_report(_shard(run_dir, tmp_path / "s1", {"maps"}))
    faults = kcidb.build_report(_shard(run_dir, tmp_path / "s2", {"faults"}))
    for part in (maps, faults):
        kcidb.validate(part)
        assert part["checkouts"] == whole["checkouts"] and part["builds"] == whole["builds"]
    assert maps["tests"] and faults["tests"]
    assert not {t["id"] for t in maps["tests"]} & {t["id"] for t in faults["tests"]}
    merged = sorted(maps["tests"] + faults["tests"], key=lambda t: t["id"])
    assert merged == sorted(whole["tests"], key=lambda t: t["id"])


def test_a_label_renames_tests_only(run_dir):
    plain = kcidb.build_report(run_dir)
    labelled = kcidb.build_report(run_dir, kcidb.ExportOptions(label="nightly-1"))
    assert plain["builds"] == labelled["builds"] and plain["checkouts"] == labelled["checkouts"]
    assert not {t["id"] for t in plain["tests"]} & {t["id"] for t in labelled["tests"]}
    assert [t["path"] for t in plain["tests"]] == [t["path"] for t in labelled["tests"]]


def test_another_patch_set_is_another_checkout_and_build(run_dir):
    before = kcidb.build_report(run_dir)
    rec_path = run_dir / "kernels" / "patched-faults.json"
    rec = json.loads(rec_path.read_text())
    rec["patches"].append({"name": "extra.patch", "sha256": hashlib.sha256(b"extra").hexdigest()})
    rec_path.write_text(json.dumps(rec))  # FAKE: a second patch in the record
    after = kcidb.build_report(run_dir)
    ids = lambda d, k: {o["id"] for o in d[k]}  # noqa: E731
    assert len(ids(before, "checkouts") & ids(after, "checkouts")) == 1  # the baseline's
    assert len(ids(before, "builds") & ids(after, "builds")) == 1
    assert len(ids(before, "tests") & ids(after, "tests")) == 11  # the baseline build's tests


# ----------------------------------------------------------------- statuses of other verdicts
def _fake_row(**kw) -> dict:
    base = dict(axis="kernel-vs-simulator", suite="maps", variant="baseline", model="baseline",
                profile="faults", scenario="fake-scenario", measurement="error", key="",
                observed="", predicted="", verdict="match", rule="fake", detail="")
    return base | kw


@pytest.mark.parametrize("verdicts, status", [
    (["match", "hung"], "ERROR"),
    (["match", "error"], "ERROR"),
    (["error", "crashed", "match"], "FAIL"),
    (["hung", "mismatch"], "FAIL"),
    (["info"], "DONE"),
    (["info", "match"], "PASS"),
])
def test_a_groups_status_is_its_rows_highest_priority(run_dir, verdicts, status):
    """FAKE rows appended to the recorded verdicts (verdicts a real run gives, made up here)."""
    with open(run_dir / "verdicts.jsonl", "a") as fh:
        for i, v in enumerate(verdicts):
            fh.write(json.dumps(_fake_row(verdict=v, key=f"fake:{i}",
                                          detail="--- console ---\nKernel panic - not syncing: fake"
                                          if v == "crashed" else "")) + "\n")
    data = kcidb.build_report(run_dir)
    kcidb.validate(data)
    t = next(t for t in data["tests"] if t["path"] == "forkdiff.maps.fake-scenario.error")
    assert t["status"] == status
    if "crashed" in verdicts:
        assert t["log_excerpt"].startswith("CRASHED fake:")  # the crash before the rest
        assert "Kernel panic - not syncing: fake" in t["log_excerpt"]


def test_a_long_console_excerpt_is_cut_to_the_limit(run_dir):
    """FAKE: a crashed row whose console excerpt is longer than the schema allows."""
    console = "".join(f"[  {i:5d}.000000] Call Trace line {i}\n" for i in range(2000))
    with open(run_dir / "verdicts.jsonl", "a") as fh:
        fh.write(json.dumps(_fake_row(verdict="crashed", key="r:vm",
                                      detail=f"--- console ---\n{console}\0")) + "\n")
    data = kcidb.build_report(run_dir)
    kcidb.validate(data)
    t = next(t for t in data["tests"] if t["path"] == "forkdiff.maps.fake-scenario.error")
    assert len(console) > kcidb.LOG_EXCERPT_MAX
    assert kcidb.LOG_EXCERPT_MAX - 100 < len(t["log_excerpt"]) <= kcidb.LOG_EXCERPT_MAX
    assert "Call Trace line 0\n" in t["log_excerpt"]  # the start of the excerpt is kept
    kept, _, note = t["log_excerpt"].rpartition("\n[... cut: ")
    full = f"CRASHED r:vm: observed=\n--- console ---\n{console}\\0\n"
    assert full.startswith(kept) and note == f"{len(full) - len(kept)} more characters; see verdicts.jsonl]"


def test_a_scenario_name_outside_the_path_alphabet_still_makes_a_valid_path():
    p = kcidb.test_path("faults", "my scenario.v2", "fault_outcome")
    assert p == "forkdiff.faults.my_scenario_v2.fault_outcome"
    assert LATEST.path_re.fullmatch(p)
    assert kcidb.test_path("spawn", "total-21", "forks_per_s", "patched", "baseline") \
        == "forkdiff.spawn.total-21.forks_per_s.model-baseline"


# ----------------------------------------------------------------- bad input
def test_bad_folders_are_one_line_errors(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    no_verdicts = tmp_path / "no-verdicts"
    no_verdicts.mkdir()
    (no_verdicts / "run.json").write_text("{}")
    old = tmp_path / "old"  # a real run's folder made before kernels/ was recorded
    shutil.copytree(REPO / "tests" / "data" / "small-run", old)
    shutil.copy(RECORDED / "verdicts.jsonl", old / "verdicts.jsonl")
    for folder, cause, step in (
            (tmp_path / "missing", "is not a folder", "results folder"),
            (empty, "is not a forkdiff results folder (no run.json", "make vm-test"),
            (no_verdicts, "no verdicts in", "forkdiff compare"),
            (old, "records no kernel builds (kernels/*.json missing", "fresh folder")):
        r = forkdiff("export", "kcidb", str(folder))
        lines = [x for x in r.stderr.splitlines() if x.strip()]
        assert r.returncode == 2 and len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
        assert cause in lines[0] and "next:" in lines[0] and step in lines[0], lines[0]
        assert not (folder / "kcidb.json").exists()


def test_verdicts_of_a_kernel_without_its_record_are_refused(run_dir):
    (run_dir / "kernels" / "baseline-faults.json").unlink()
    with pytest.raises(ForkdiffError, match="baseline/faults kernel, but kernels/ has no record"):
        kcidb.build_report(run_dir)


def test_observations_from_another_kernel_build_are_refused(run_dir):
    rec_path = run_dir / "kernels" / "patched-faults.json"
    rec = json.loads(rec_path.read_text())
    rec["config_sha256"] = "0" * 64  # FAKE: the folder's record names another .config
    rec_path.write_text(json.dumps(rec))
    with pytest.raises(ForkdiffError, match="two kernels in one folder"):
        kcidb.build_report(run_dir)


# ----------------------------------------------------------------- spawn (recorded too)
SPAWN = REPO / "tests" / "data" / "kcidb-spawn"
# tests/data/kcidb-spawn: a REAL `SUITES=spawn VMAS=21,421 DURATION=1 make vm-test` on the
# clean perf kernels of both variants (copied from its OUT= folder, nothing edited).


def test_spawn_rows_are_tests_of_the_patched_perf_build_with_their_rates(tmp_path):
    d = tmp_path / "spawn"
    shutil.copytree(SPAWN, d)
    data = kcidb.build_report(d)
    LATEST.validate_exactly(data)
    builds = {b["id"]: (b["misc"]["variant"], b["misc"]["profile"]) for b in data["builds"]}
    assert sorted(builds.values()) == [("baseline", "perf"), ("patched", "perf")]
    # both axes judge the patched kernel: its forks/s against the model, and against the baseline
    judged = [t for t in data["tests"] if t["status"] != "DONE"]
    assert {builds[t["build_id"]] for t in judged} == {("patched", "perf")}
    paths = {t["path"]: t for t in judged}
    assert set(paths) == {f"forkdiff.spawn.total-{n}.{m}" for n in (21, 421)
                          for m in ("forks_per_s", "improvement_pct")}
    # the baseline's rates are the work model's input, not judged: DONE tests carrying them
    done = {t["path"]: t for t in data["tests"] if t["status"] == "DONE"}
    assert {builds[t["build_id"]] for t in done.values()} == {("baseline", "perf")}
    assert set(done) == {f"forkdiff.spawn.total-{n}.forks_per_s" for n in (21, 421)}
    for variant, tests in (("patched", paths), ("baseline", done)):
        measured = {json.loads(x)["values"]["map_count"]: json.loads(x)["value"]
                    for x in (d / "observations.jsonl").read_text().splitlines()
                    if '"measurement":"spawn"' in x and f'"variant":"{variant}"' in x
                    and '"calibration"' not in x}
        assert sorted(measured) == [21, 421]
        for n, rate in measured.items():
            number = tests[f"forkdiff.spawn.total-{n}.forks_per_s"]["number"]
            assert number["unit"] == "forks/s" and number["value"] == pytest.approx(rate, abs=0.01)
    for n in (21, 421):
        assert paths[f"forkdiff.spawn.total-{n}.improvement_pct"]["number"]["unit"] == "%"
