"""`forkdiff bisect-run`'s exit codes and the step verdicts behind them
(orchestrator/commands/bisect_run.py, orchestrator/conduct/step.py, commands/series_cmd.py first_change),
and the mirror's file sync (orchestrator/prepare/mirror.py) on real folders.

Fakes: the verdict rows given to judge() and the step lists given to first_change() are written
here (hand-made rows in verdicts.jsonl's format, not a run's output); the exit-code tests run the
real command in a subprocess on folders that are not kernel trees, which needs no kernel."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orchestrator.commands.bisect_run import ABORT, BAD, GOOD, SKIP, exit_code
from orchestrator.commands.series_cmd import first_change
from orchestrator.conduct.step import BUILD_FAILED, FAIL, INCONCLUSIVE, PASS, judge
from orchestrator.errors import ForkdiffError
from orchestrator.prepare.mirror import check_outside, sync

REPO = Path(__file__).resolve().parents[2]


def row(suite: str, verdict: str, key: str = "k=1") -> dict:
    return {"suite": suite, "scenario": "anon-touched-21", "measurement": "fault_outcome",
            "key": key, "verdict": verdict, "observed": "o", "predicted": "p"}


def test_exit_codes_follow_git_bisect_run():
    assert (exit_code(PASS), exit_code(FAIL)) == (GOOD, BAD) == (0, 1)
    assert exit_code(BUILD_FAILED) == exit_code(INCONCLUSIVE) == SKIP == 125
    assert exit_code("anything else") == SKIP  # never a good or bad it does not have
    assert ABORT == 128  # git bisect run aborts on codes above 127


def test_judge_mismatch_or_crash_is_bad_hang_or_error_is_inconclusive():
    assert judge([row("faults", "match"), row("faults", "mismatch", "k=7")], ["faults"]).verdict == FAIL
    assert judge([row("faults", "match"), row("faults", "crashed")], ["faults"]).verdict == FAIL
    assert judge([row("faults", "match"), row("faults", "hung")], ["faults"]).verdict == INCONCLUSIVE
    assert judge([row("faults", "match"), row("faults", "error")], ["faults"]).verdict == INCONCLUSIVE
    assert judge([row("faults", "match")], ["faults"]).verdict == PASS
    # a mismatch beside an error still is a difference the kernel showed
    assert judge([row("faults", "error"), row("faults", "mismatch")], ["faults"]).verdict == FAIL


def test_judge_without_comparisons_or_with_failed_jobs_is_inconclusive():
    assert judge([], ["faults"]).verdict == INCONCLUSIVE
    assert judge([row("maps", "match")], ["maps", "faults"]).verdict == INCONCLUSIVE
    assert judge([row("faults", "skipped")], ["faults"]).verdict == INCONCLUSIVE
    assert judge([row("faults", "match")], ["faults"], run_errors=True).verdict == INCONCLUSIVE


def test_judge_names_the_first_bad_row():
    out = judge([row("faults", "match"), row("faults", "mismatch", "k=14")], ["faults"])
    assert "k=14" in out.detail and out.suites == {"faults": FAIL}


def steps(*verdicts: str) -> list[dict]:
    return [{"verdict": v, "per_suite": {"faults": v}} for v in verdicts]


def test_first_change_names_the_patch_and_skips_inconclusive_steps():
    assert first_change(steps(PASS, PASS, FAIL, FAIL)) == 2
    assert first_change(steps(PASS, PASS, PASS)) is None
    assert first_change(steps(PASS, INCONCLUSIVE, FAIL)) == 2
    assert first_change(steps(FAIL, FAIL, PASS)) == 2  # a fix is a change too
    assert first_change(steps(PASS, BUILD_FAILED, PASS)) == 1


def bisect_run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    env.pop("KERNEL_TREE", None)
    return subprocess.run([sys.executable, "-m", "orchestrator", "bisect-run", *args], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=300)


def test_a_usage_error_aborts_the_bisection_not_marks_it_bad(tmp_path):
    res = bisect_run("--no-such-option", cwd=tmp_path)
    assert res.returncode == ABORT, res.stderr
    res = bisect_run("--suites", "nosuch", cwd=tmp_path)
    assert res.returncode == ABORT and "unknown SUITES nosuch" in res.stderr
    res = bisect_run("--scenario", "no-such-scenario", cwd=tmp_path)
    assert res.returncode == ABORT, res.stderr


def test_a_tree_configured_in_place_aborts(tmp_path):
    (tmp_path / ".config").write_text("CONFIG_X=y\n")
    res = bisect_run("--suites", "faults", cwd=tmp_path)
    assert res.returncode == ABORT and "configured in place" in res.stderr


def test_a_commit_that_is_not_a_kernel_tree_is_skipped(tmp_path):
    (tmp_path / "Makefile").write_text("all:\n")
    res = bisect_run("--suites", "faults", cwd=tmp_path)
    assert res.returncode == SKIP, res.stderr
    assert "is not a kernel tree" in res.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Makefile"]  # nothing written into it


def test_results_inside_the_tree_are_refused(tmp_path):
    with pytest.raises(ForkdiffError, match="inside the kernel tree"):
        check_outside(tmp_path / "results", tmp_path)
    check_outside(tmp_path.parent / "elsewhere", tmp_path)


def test_sync_copies_changes_with_a_new_mtime_and_removes_what_is_gone(tmp_path):
    src, dest = tmp_path / "src", tmp_path / "dest"
    (src / "kernel").mkdir(parents=True)
    (src / ".git").mkdir()
    (src / ".git" / "HEAD").write_text("ref\n")
    (src / "kernel" / "fork.c").write_text("one\n")
    (src / "gone.c").write_text("x\n")
    (src / "link").symlink_to("kernel/fork.c")
    old = time.time() - 10 * 86400
    os.utime(src / "kernel" / "fork.c", (old, old))
    first = sync(src, dest)
    assert first["copied"] == 3 and not (dest / ".git").exists()
    assert (dest / "kernel" / "fork.c").read_text() == "one\n" and os.readlink(dest / "link") == "kernel/fork.c"
    assert (dest / "kernel" / "fork.c").stat().st_mtime > old + 86400  # newer than any object
    (dest / "o-faults").mkdir()  # the build folder: never removed
    again = sync(src, dest)
    assert again["copied"] == again["compared"] == 0
    (src / "gone.c").unlink()
    (src / "kernel" / "fork.c").write_text("two\n")
    older = old - 3600  # older than the last copy, and than the file it replaces: still copied
    os.utime(src / "kernel" / "fork.c", (older, older))
    third = sync(src, dest)
    assert third["copied"] == 1 and third["removed"] == 1
    assert (dest / "kernel" / "fork.c").read_text() == "two\n" and (dest / "o-faults").is_dir()
    # the same content under a new time (a fresh checkout): read, not copied
    before = (dest / "kernel" / "fork.c").stat().st_mtime_ns
    os.utime(src / "kernel" / "fork.c")
    fourth = sync(src, dest)
    assert fourth["compared"] == 1 and fourth["copied"] == 0
    assert (dest / "kernel" / "fork.c").stat().st_mtime_ns == before
    assert (src / ".git" / "HEAD").read_text() == "ref\n"
