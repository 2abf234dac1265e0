"""Where kernel developers work: a patch series and a bisection, end to end on real kernels.

- `forkdiff series` on tests/planted/series-leak-in-patch-2.mbox (real `git format-patch`
  output: patches 1 and 3 change a comment in mm/mmap.c and kernel/exit.c, patch 2 is the planted
  leak of tests/planted/leak-vma-on-anon-vma-fork-failure.patch) runs the faults suite on
  anon-touched-21 after each patch of the default 6.12 tree and must name patch 2.
- A real `git bisect run python3 -m orchestrator bisect-run ...` over a local repository of
  twelve commits on the cached 6.12 tree (tests/vm/bisect_repo.py; commit 8 is the planted leak)
  must end on commit 8, and leave the repository as git left it.

Real parts only: real kernels (built from the series' steps and the repository's commits, cached
by content: a second run builds nothing), QEMU, fail-nth, real git. Cold, each needs kernel
builds (6-15 min per kernel at load 11-18; the repository's commits once, 6 min). Warm, measured
at load 14-17: the series about 4 min (four runs of 32-86 s), the bisection about 10 min (clone
and checkout of 1.7 GB about 3 min; four steps of 135, 61, 114 and 48 s, the first one reading
the whole fresh checkout once)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from bisect_repo import PLANTED_AT, clone

from orchestrator.prepare.tree import default_tree

REPO = Path(__file__).resolve().parents[2]
MBOX = REPO / "tests" / "planted" / "series-leak-in-patch-2.mbox"
STEP = ("--suites", "faults", "--scenario", "anon-touched-21")


def forkdiff(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    for k in ("PATCHES", "KERNEL_TREE", "SUITES", "SCENARIOS", "OUT"):
        env.pop(k, None)
    r = subprocess.run([sys.executable, "-m", "orchestrator", *args], cwd=cwd, env=env,
                       capture_output=True, text=True, timeout=5400)
    print(r.stderr[-4000:], r.stdout[-2000:])
    return r


def test_series_names_the_planted_patch(tmp_path: Path) -> None:
    # which patch is the bug is read from the mbox itself: the one that touches kernel/fork.c
    diffs = MBOX.read_text().split("\nFrom ")[1:]
    fork_c = [i for i, mail in enumerate(diffs, 1) if "+++ b/kernel/fork.c" in mail]
    assert fork_c == [2]
    r = forkdiff("series", "--patches", str(MBOX), *STEP, "--out", str(tmp_path / "series"))
    summary = json.loads((tmp_path / "series" / "series.json").read_text())
    assert r.returncode == 1
    assert [s["verdict"] for s in summary["steps"]] == ["pass", "pass", "fail", "fail"]
    assert summary["first_change"] == 2
    assert "first patch that changes a verdict: patch 2: [PATCH 2/3] fork:" in r.stdout
    # the failing step is the leak, seen as leak_after_fork rows of vm_area_struct
    rows = [json.loads(x) for x in (tmp_path / "series" / "step-02" / "verdicts.jsonl")
            .read_text().splitlines()]
    bad = {v["measurement"] for v in rows if v["verdict"] == "mismatch"}
    assert "leak_after_fork" in bad
    assert (tmp_path / "series" / "series.md").read_text().count("| fail |") == 2


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                          check=True).stdout.strip()


def test_git_bisect_run_ends_on_the_planted_commit(tmp_path: Path) -> None:
    repo = tmp_path / "linux"
    commits = clone(default_tree().path, repo)
    assert len(commits) == 12
    planted = commits[PLANTED_AT - 1]
    assert "planted bug" in git(repo, "log", "-1", "--format=%s", planted)
    steps = tmp_path / "steps"
    git(repo, "bisect", "start", commits[-1], commits[0])
    r = subprocess.run(["git", "bisect", "run", sys.executable, "-m", "orchestrator", "bisect-run",
                        *STEP, "--out", str(steps)], cwd=repo, capture_output=True, text=True,
                       timeout=5400, env=dict(os.environ, PYTHONPATH=str(REPO)))
    print(r.stdout[-6000:], r.stderr[-3000:])
    assert r.returncode == 0, r.stderr[-2000:]
    assert f"{planted} is the first bad commit" in r.stdout
    records = [json.loads(x) for x in (steps / "bisect.jsonl").read_text().splitlines()]
    assert len(records) >= 3
    for rec in records:  # each step's verdict is what its commit's place in the history says
        commit = rec["identity"].split(":")[1]
        want = "fail" if commits.index(commit) >= PLANTED_AT - 1 else "pass"
        assert rec["verdict"] == want, rec
        print(f"step {commit[:12]}: {rec['verdict']}, sync {rec['sync']['seconds']} s "
              f"({rec['sync']['copied']} copied), build {rec['seconds'].get('build')} s, "
              f"run {rec['seconds'].get('run')} s, wall {rec['wall_s']} s")
    git(repo, "bisect", "reset")
    # forkdiff wrote nothing into the tree: no results, no build output, no changed file
    assert git(repo, "status", "--porcelain", "--ignored") == ""
