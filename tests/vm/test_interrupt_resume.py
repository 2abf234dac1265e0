"""SIGINT / SIGTERM in the middle of a real run (`forkdiff run --suite maps` on the patched
kernel): no QEMU survives, no half-written record, and `--resume` finishes the run with the
same verdicts as a run that was never interrupted."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orchestrator.analysis.compare import compare_dir

SCENARIOS = ["dontfork-only", "wipeonfork-only", "mixed-small", "anon-touched-21"]


def qemu_pids(owner: int) -> set[int]:
    """Live QEMU processes started by forkdiff process `owner` (QEMU's -name carries its pid,
    so runs of other users of this machine do not count, and orphans are still found)."""
    pids = set()
    tag = f"forkdiff-guest-{owner}".encode()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().startswith("qemu-system") and \
                        tag in (entry / "cmdline").read_bytes().split(b"\0") and \
                        "State:\tZ" not in (entry / "status").read_text():
                    pids.add(int(entry.name))
            except OSError:
                pass
    return pids


def run_cmd(out: Path, *extra: str) -> list[str]:
    cmd = [sys.executable, "-m", "orchestrator", "run", "--suite", "maps", "--variant", "patched",
           "--out", str(out), "--no-icount", *extra]
    for s in SCENARIOS:
        cmd += ["--scenario", s]
    return cmd


def verdict_rows(out: Path) -> list[tuple]:
    df = compare_dir(out)
    cols = ["suite", "variant", "scenario", "measurement", "key", "observed", "predicted", "verdict"]
    return sorted(map(tuple, df[cols].astype(str).to_numpy().tolist()))


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_then_resume(tmp_path: Path, sig: int) -> None:
    out = tmp_path / "interrupted"
    obs = out / "observations.jsonl"
    p = subprocess.Popen(run_cmd(out), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 300
    seen: set[int] = set()
    while time.monotonic() < deadline and p.poll() is None:
        seen |= qemu_pids(p.pid)
        if seen and obs.exists() and len(obs.read_text().splitlines()) >= 5:  # the first case is in
            break
        time.sleep(0.05)
    assert p.poll() is None, "the run ended before it could be interrupted"
    assert seen, "no guest of the run was seen"
    p.send_signal(sig)
    output = p.communicate(timeout=60)[0]
    assert p.returncode != 0, output
    for _ in range(100):
        if not qemu_pids(p.pid):
            break
        time.sleep(0.1)
    assert not qemu_pids(p.pid), "QEMU outlived the interrupted run"
    lines = obs.read_text().splitlines()
    assert lines and all(json.loads(line)["key"] for line in lines)  # whole records only
    done_before = len(lines)

    r = _run_to_end(run_cmd(out, "--resume"))
    recs = [json.loads(line) for line in obs.read_text().splitlines()]
    assert len({x["key"] for x in recs}) == len(recs) and len(recs) > done_before
    assert "jobs skipped" in r and " 0 jobs skipped" not in r

    clean = tmp_path / "clean"
    _run_to_end(run_cmd(clean))
    assert verdict_rows(out) == verdict_rows(clean)


def _run_to_end(cmd: list[str]) -> str:
    """Run a forkdiff command to its end; it must succeed and leave no QEMU of its own."""
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = p.communicate(timeout=600)[0]
    assert p.returncode == 0, out
    assert not qemu_pids(p.pid), "QEMU outlived the run"
    return out
