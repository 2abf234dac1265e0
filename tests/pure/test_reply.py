"""`forkdiff reply` (orchestrator/analysis/reply.py) on REAL FAIL results folders:
  tests/data/kcidb-run       6.12.117, maps + faults with KMEMLEAK=1 and the planted
                             tests/planted/leak-anon-vma-on-chain-failure.patch (its run.json
                             predates the record of PATCHES= paths: --patches names the file)
  tests/data/leak-vma-fail   6.12.118, `make vm-test SUITES=faults SCENARIOS=anon-touched-21
                             PATCHES=tests/planted/leak-vma-on-anon-vma-fork-failure.patch
                             VARIANTS=patched` (run.json records PATCHES= with path and subject)
and on a REAL PASS (tests/data/kcidb-spawn). Expected text is derived from the folders' own
files and from triage.py, the module the reply reuses, never copied from the reply."""

from __future__ import annotations

import json
import shlex
import shutil
from pathlib import Path

import pytest

from orchestrator.analysis import triage
from orchestrator.analysis.reply import body
from orchestrator.cli import main
from orchestrator.errors import ForkdiffError
from orchestrator.prepare.patches import patch_subject
from orchestrator.results import verdicts as vd

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data"
PLANTED = REPO / "tests" / "planted"


def _folded(text: str) -> str:
    """The reply's text with its line wrapping undone (it wraps at 72 columns)."""
    return " ".join(text.split())


def _command(text: str, head: str) -> list[str]:
    lines = text.splitlines()
    return shlex.split(lines[lines.index(head) + 1])


@pytest.fixture
def leak_run(tmp_path) -> Path:
    d = tmp_path / "kcidb-run"
    shutil.copytree(DATA / "kcidb-run", d)
    return d


def test_reply_to_the_anon_vma_leak_names_what_was_tested_and_what_broke(leak_run, capsys):
    patch = PLANTED / "leak-anon-vma-on-chain-failure.patch"
    assert main(["reply", str(leak_run), "--patches", str(patch)]) == 0
    text = (leak_run / "reply.txt").read_text()
    assert capsys.readouterr().out == text  # printed, and written
    meta = json.loads((leak_run / "run.json").read_text())
    df = vd.read(leak_run / "verdicts.jsonl")
    flat = _folded(text)
    # what was tested: the tree, the patch with its subject, the kernels, the suites
    assert meta["tree_identity"] in text and f"Linux {meta['kernel_version']}" in text
    assert patch.name in text and _folded(patch_subject(patch)) in flat
    for kernel in (leak_run / "kernels").glob("*.json"):
        release = json.loads(kernel.read_text())["release"]
        (line,) = [x for x in text.splitlines() if release in x]
        failed = {(r["variant"], r["profile"]) for r in vd.failing(df).to_dict(orient="records")}
        assert ("<- FAIL" in line) == (tuple(kernel.stem.split("-", 1)) in failed)
    assert f"suites:    {meta['suites']}" in text and "kmemleak on" in text
    # the first divergence and every group, as triage says them; the tags left to fill
    assert _folded(triage.describe_first(triage.first_divergence(df))) in flat
    groups = triage.groups(df)
    assert f"({len(vd.failing(df))} rows in {len(groups)} groups)" in text
    for g in groups:
        assert _folded(triage.describe(g)) in flat
    assert "| Reported-by: <" in text and "| Closes: <" in text
    # one command that runs the failing part again: the failing suite, scenario and kernel
    cmd = _command(text, "To reproduce (forkdiff checkout, the kernels are built from the tree):")
    assert cmd[:2] == ["make", "vm-test"]
    args = dict(a.split("=", 1) for a in cmd[2:])
    assert args["SUITES"] == ",".join(sorted(set(vd.failing(df)["suite"])))
    assert args["SCENARIOS"] == ",".join(sorted(set(vd.failing(df)["scenario"])))
    assert args["PATCHES"] == str(patch.resolve()) and args["KMEMLEAK"] == "1"
    assert args["VARIANTS"] == ",".join(sorted(set(vd.failing(df)["variant"])))
    assert "KERNEL_TREE" not in args  # Debian's linux-source-6.12: the default tree
    whole = dict(a.split("=", 1) for a in _command(text, "The whole run:")[2:])
    assert whole["SUITES"].split(",") == [s.strip() for s in meta["suites"].split(",")]


def test_an_older_folder_without_the_patch_file_says_which_file_to_name(leak_run):
    text, failed = body(leak_run)
    assert failed
    assert "(subject unknown: name the patch file with --patches)" in text
    assert "PATCHES='<leak-anon-vma-on-chain-failure.patch>'" in text
    with pytest.raises(ForkdiffError, match="no such file"):
        body(leak_run, [leak_run / "missing.patch"])


def test_reply_to_the_vma_leak_uses_the_recorded_patches(tmp_path):
    d = tmp_path / "leak-vma-fail"
    shutil.copytree(DATA / "leak-vma-fail", d)
    meta = json.loads((d / "run.json").read_text())
    (patch,) = meta["patches"]  # recorded by the run: path, sha256, subject
    text, failed = body(d)
    assert failed and _folded(patch["subject"]) in _folded(text)
    df = vd.read(d / "verdicts.jsonl")
    first = triage.first_divergence(df)
    assert _folded(triage.describe_first(first)) in _folded(text)
    # the first failing row's own detail, below the groups
    assert str(first["detail"]).splitlines()[0][:60] in text
    args = dict(a.split("=", 1) for a in _command(text, "To reproduce (forkdiff checkout, the kernels are built from the tree):")[2:])
    assert args["PATCHES"] == patch["path"] and args["VARIANTS"] == "patched"
    assert "KMEMLEAK" not in args  # the run had kmemleak off


def test_a_pass_has_nothing_to_report_unless_forced(tmp_path, capsys):
    d = tmp_path / "pass"
    shutil.copytree(DATA / "kcidb-spawn", d)
    assert main(["reply", str(d)]) == 2
    err = capsys.readouterr().err
    assert "PASS" in err and "nothing to report" in err and "--force" in err
    assert not (d / "reply.txt").exists()
    assert main(["reply", str(d), "--force", "-o", str(tmp_path / "notice.txt")]) == 0
    notice = (tmp_path / "notice.txt").read_text()
    n = len(vd.read(d / "verdicts.jsonl"))
    assert f"all {n} comparisons passed. Nothing to report." in _folded(notice)
    assert "Reported-by" not in notice


def test_a_folder_without_verdicts_is_refused(tmp_path):
    d = tmp_path / "raw"
    shutil.copytree(DATA / "spawn-72-reference", d)
    with pytest.raises(ForkdiffError, match="no verdicts"):
        body(d)


def test_the_reproduce_line_gives_model_back(tmp_path):
    """tests/data/model-fail: a REAL run with MODEL=baseline (its run.json predates the
    record of MODEL=: the field is added here as `make vm-test` now writes it)."""
    from orchestrator.commands.compare_cmd import parse_models

    d = tmp_path / "model-fail"
    shutil.copytree(DATA / "model-fail", d)
    meta = json.loads((d / "run.json").read_text())
    meta["model_arg"] = ",".join(f"{k}={v}" for k, v in sorted(parse_models("baseline").items()))
    (d / "run.json").write_text(json.dumps(meta))
    text, failed = body(d)
    assert failed
    args = dict(a.split("=", 1) for a in _command(text, "To reproduce (forkdiff checkout, the kernels are built from the tree):")[2:])
    assert parse_models(args["MODEL"])["patched"] == meta["model map"]["patched"] == "baseline"
