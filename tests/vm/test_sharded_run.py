"""One small run three ways on the same cached kernels: unsharded (`forkdiff vm-test`), as two
shards run by two processes at once (`--shard 1/2`, `--shard 2/2`) joined by `forkdiff merge`
(which compares and reports), and on a Dask LocalCluster with two single-slot workers
(`--executor dask`). For real: the CLI, kernels from the locked cache, QEMU, sshd, Dask.

Selection, a few minutes each: SUITES=maps,faults,spawn with SCENARIOS=mixed-small,
VMAS=121,421 and DURATION=0.5 (spawn rows: both kernels' timings, the baseline's calibration
layouts, the variant-vs-variant rows and the work model's rows). The sharded and Dask runs
use SWEEP_PART=1, so each kernel's fault sweep is split into two k-ranges run by different
guests (faultsweep --k-from) and joined again.

Checks: the two shards split the run's job list (disjoint, together all of it, each shard
some, the sweeps in parts); the merged folder's verdict table equals the unsharded one row for
row, observed and predicted values included, except the spawn timings' values: under -icount a
spawn rate repeats within about 0.3% between boots (docs/testing.md), so there the verdicts must be
equal and the values within 1% (+1 unit); the same for the Dask run."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from vmtest_run import proc_children

REPO = Path(__file__).resolve().parents[2]
# 121 and 421 VMAs, not 21: at 21 VMAs (about 7,500 forks/s) a fresh guest's rate still
# differs by up to 2 % from another's, with the warm-up and the slice median (06:50 UTC: the
# improvement at 21 VMAs was 7.32 % unsharded, 9.33 % sharded, 4.63 % on Dask), more than
# this test's tolerance; the timing verdicts are specified from 121 VMAs up
KNOBS = {"SUITES": "maps,faults,spawn", "SCENARIOS": "mixed-small", "VMAS": "121,421", "DURATION": "0.5"}
ROW = ("axis", "suite", "variant", "model", "profile", "scenario", "measurement", "key",
       "observed", "predicted", "verdict")


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    return {**env, **KNOBS, **extra}


def _forkdiff(*args: str, **extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "orchestrator", *args], cwd=REPO, env=_env(**extra),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait(p: subprocess.Popen[str], what: str) -> tuple[int, str]:
    out, _ = p.communicate(timeout=1500)
    print(f"--- {what}: exit {p.returncode}\n{out[-1500:]}")
    return p.returncode, out


def _rows(folder: Path) -> list[dict]:
    return [json.loads(x) for x in (folder / "verdicts.jsonl").read_text().splitlines() if x.strip()]


def verdict_table(folder: Path) -> list[tuple]:
    """Every row; spawn timings without their values (checked by same_timings)."""
    return sorted(tuple("~" if r["suite"] == "spawn" and c in ("observed", "predicted") else str(r.get(c))
                        for c in ROW) for r in _rows(folder))


def _number(text: str) -> float:
    return float(str(text).split()[0])


def same_timings(a: Path, b: Path) -> None:
    def values(folder: Path) -> dict[tuple, tuple[float, float]]:
        return {(r["axis"], r["variant"], r["scenario"], r["measurement"], r["key"]):
                (_number(r["observed"]), _number(r["predicted"]))
                for r in _rows(folder) if r["suite"] == "spawn" and r["observed"] and r["predicted"]}
    va, vb = values(a), values(b)
    assert va.keys() == vb.keys() and va
    for key, pair in va.items():
        for x, y in zip(pair, vb[key], strict=True):
            assert abs(x - y) <= 0.01 * max(abs(x), abs(y)) + 1.0, (key, pair, vb[key])


@pytest.fixture(scope="module")
def unsharded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    out = tmp_path_factory.mktemp("unsharded") / "run"
    t0 = time.monotonic()
    rc, _ = _wait(_forkdiff("vm-test", "--out", str(out)), "unsharded")
    print(f"unsharded run: {time.monotonic() - t0:.0f} s")
    assert (out / "verdicts.jsonl").is_file()
    return out, rc


def test_two_shards_merged_give_the_unsharded_verdicts(unsharded, tmp_path: Path) -> None:
    ref, ref_rc = unsharded
    t0 = time.monotonic()
    procs = [_forkdiff("vm-test", "--shard", f"{i}/2", "--out", str(tmp_path / f"shard{i}"), JOBS="1",
                       SWEEP_PART="1")
             for i in (1, 2)]
    results = [_wait(p, f"shard {i}/2") for i, p in enumerate(procs, 1)]
    print(f"two shards side by side: {time.monotonic() - t0:.0f} s")
    assert [rc for rc, _ in results] == [0, 0]
    infos = [json.loads((tmp_path / f"shard{i}" / "shard.json").read_text()) for i in (1, 2)]
    a, b = (set(x["units"]) for x in infos)
    assert a and b and not a & b
    assert len(a | b) == infos[0]["jobs"] == infos[1]["jobs"]
    parts = sorted(u for u in a | b if u.startswith("faults|"))
    assert len(parts) == 4 and all("#k" in u for u in parts), parts
    t0 = time.monotonic()
    rc, out = _wait(_forkdiff("merge", str(tmp_path / "merged"), str(tmp_path / "shard1"),
                              str(tmp_path / "shard2")), "merge")
    print(f"merge + compare + report: {time.monotonic() - t0:.0f} s")
    assert rc == ref_rc, out
    merged, expected = verdict_table(tmp_path / "merged"), verdict_table(ref)
    assert any(r[1] == "spawn" for r in expected) and any(r[0] == "variant-vs-variant" for r in expected)
    assert merged == expected
    same_timings(tmp_path / "merged", ref)
    kernels = sorted(p.name for p in (ref / "kernels").glob("*.json"))
    # one kernel per variant: spawn times the faults kernels the other suites use
    assert kernels == ["baseline-faults.json", "patched-faults.json"] and sorted(p.name for p in (tmp_path / "merged" / "kernels").glob("*.json")) == kernels
    assert (tmp_path / "merged" / "report.html").is_file()


def _children(pid: int) -> dict[int, str]:
    """Direct children of pid -> their command line."""
    return {child: p["cmdline"] for child, p in proc_children(pid).items()}


def _kill_a_busy_worker(proc: subprocess.Popen[str], timeout: float = 600) -> int | None:
    """SIGKILL the first Dask worker process of `proc` seen running a QEMU; its pid."""
    end = time.monotonic() + timeout
    while time.monotonic() < end and proc.poll() is None:
        for pid, cmd in _children(proc.pid).items():
            if "spawn_main" in cmd and any("qemu-system" in c for c in _children(pid).values()):
                time.sleep(3)  # let it get into its jobs
                os.kill(pid, signal.SIGKILL)
                return pid
        time.sleep(1)
    return None


def test_dask_local_cluster_gives_the_unsharded_verdicts(unsharded, tmp_path: Path) -> None:
    """One worker is killed (SIGKILL) while its guest runs: its task runs again elsewhere."""
    ref, ref_rc = unsharded
    t0 = time.monotonic()
    proc = _forkdiff("vm-test", "--executor", "dask", "--out", str(tmp_path / "dask"), JOBS="2",
                     SWEEP_PART="1")
    killed = _kill_a_busy_worker(proc)
    rc, out = _wait(proc, "dask")
    print(f"Dask LocalCluster (2 workers, worker {killed} killed mid-task): {time.monotonic() - t0:.0f} s")
    assert killed is not None, "no Dask worker ran a QEMU"
    assert rc == ref_rc, out
    done_on = re.findall(r"forkdiff-dask-\d+-of-\d+ on [^:]+:(\d+):", out)
    assert len(done_on) == 2 and str(killed) not in done_on, done_on
    assert verdict_table(tmp_path / "dask") == verdict_table(ref)
    same_timings(tmp_path / "dask", ref)
    assert sorted(p.name for p in (tmp_path / "dask" / "kernels").glob("*.json")) == \
        sorted(p.name for p in (ref / "kernels").glob("*.json"))
