"""Bad input to `forkdiff` ends in one line naming the cause and the next step, exit 2, no
traceback (real CLI in a subprocess; nothing here boots a VM: each case fails before that)."""

import subprocess
import sys

import pytest


def forkdiff(*args, env_extra=None, cwd=None):
    import os

    env = dict(os.environ, **(env_extra or {}))
    return subprocess.run([sys.executable, "-m", "orchestrator", *args], capture_output=True,
                          text=True, timeout=120, env=env, cwd=cwd)


@pytest.mark.parametrize("args, cause", [
    (["vm-test", "--suites", "maps,bogus"], "unknown SUITES bogus"),
    (["vm-test", "--vmas", "21,70000"], "70000 is above vm.max_map_count"),
    (["vm-test", "--vmas", "21,x"], "is not a list of integers"),
    (["vm-test", "--duration", "0"], "must be > 0"),
    (["vm-test", "--model", "upstream"], "unknown model 'upstream'"),
    (["compare", "/nonexistent-forkdiff-dir"], "no observations in /nonexistent-forkdiff-dir"),
    (["report", "/nonexistent-forkdiff-dir"], "no verdicts in /nonexistent-forkdiff-dir"),
    (["run", "--suite", "mapz"], "argument --suite: invalid choice: 'mapz'"),
    (["run", "--suite", "maps", "--variant", "upstream"], "argument --variant: invalid choice: 'upstream'"),
    (["run", "--suite", "maps", "--kmemleak"], "--kmemleak applies to the faults suite"),
    (["boot", "--variant", "patched", "--profile", "fast", "--", "true"],
     "argument --profile: invalid choice: 'fast'"),
    (["kernel", "build", "--variant", "patched", "--profile", "fast"], "invalid choice: 'fast'"),
    (["frobnicate"], "argument COMMAND: invalid choice: 'frobnicate'"),
])
def test_bad_input_is_one_line(args, cause):
    r = forkdiff(*args)
    assert r.returncode == 2, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("forkdiff: error:") and cause in lines[0]
    assert "next:" in lines[0] and "Traceback" not in r.stderr


def test_output_folder_that_is_a_file(tmp_path):
    """Refused before anything slow starts: with an empty cache, no tree is unpacked (a cold
    cache once spent 26 s unpacking the default tree before this error)."""
    f = tmp_path / "taken"
    f.write_text("not a folder")
    cache = tmp_path / "cache"
    for args in (["run", "--suite", "maps", "--out", str(f)], ["vm-test", "--out", str(f / "sub")]):
        r = forkdiff(*args, env_extra={"FORKDIFF_CACHE": str(cache)})
        assert r.returncode == 2 and "cannot be written" in r.stderr and "Traceback" not in r.stderr
        assert not (cache / "trees").exists(), args
    assert f.read_text() == "not a folder"


def test_folder_of_another_run_is_refused_unless_resumed(tmp_path):
    """A vm-test into a folder that holds a run's records would append its own and compare
    both as one run (found with OUT= of a run made hours before: every fault row twice).
    Refused before anything slow, the folder untouched; RESUME=1 gets past the check (and
    then fails later here, on the empty cache's missing tree, not on the folder)."""
    out = tmp_path / "run"
    out.mkdir()
    obs = out / "observations.jsonl"
    obs.write_text('{"key": "maps|patched|faults|mixed-small|layout"}\n' * 3)
    cache = tmp_path / "cache"
    env = {"FORKDIFF_CACHE": str(cache), "KERNEL_TREE": str(tmp_path / "no-tree")}
    r = forkdiff("vm-test", "--out", str(out), env_extra=env)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert "already holds a run (3 records in observations.jsonl)" in r.stderr and "RESUME=1" in r.stderr
    assert obs.read_text().count("\n") == 3 and sorted(p.name for p in out.iterdir()) == ["observations.jsonl"]
    r = forkdiff("vm-test", "--out", str(out), env_extra={**env, "RESUME": "1"})
    assert r.returncode != 0 and "already holds a run" not in r.stderr, r.stderr
    assert obs.read_text().count("\n") == 3
    (out / "empty").mkdir()  # an empty folder, or one without records, is a new run's
    r = forkdiff("vm-test", "--out", str(out / "empty"), env_extra=env)
    assert "already holds a run" not in r.stderr, r.stderr


def test_default_results_folders_never_collide(tmp_path):
    from orchestrator.results.outdir import new_results_dir

    dirs = [new_results_dir(tmp_path / "results") for _ in range(3)]
    assert len(set(dirs)) == 3 and all(d.is_dir() for d in dirs)
