"""Helper of the VM tests that run `forkdiff vm-test` for real: run it with knobs in the
environment and read back its verdicts and predictions."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run_vm_test(out: Path, **knobs: str) -> tuple[int, list[dict], list[dict], str]:
    """`python -m orchestrator vm-test` with OUT=out and the knobs (SUITES=..., PATCHES=...)
    in its environment: (exit status, verdicts, predictions, stderr + stdout)."""
    env = {**os.environ, "OUT": str(out), **knobs}
    r = subprocess.run([sys.executable, "-m", "orchestrator", "vm-test"], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=3600)
    print(r.stderr[-3000:])

    def lines(name: str) -> list[dict]:
        path = out / name
        return [json.loads(x) for x in path.read_text().splitlines()] if path.is_file() else []

    return r.returncode, lines("verdicts.jsonl"), lines("predictions.jsonl"), r.stderr + r.stdout


def proc_children(parent: int) -> dict[int, dict[str, str]]:
    """Processes whose parent is `parent` (a scan of /proc, no psutil): pid -> their Name and
    State (from /proc/<pid>/status) and command line. Zombies are listed too."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
        if int(fields.get("PPid", "0").strip() or 0) == parent:
            found[int(entry.name)] = {"name": fields.get("Name", "").strip(),
                                      "state": fields.get("State", "?").strip(), "cmdline": cmdline}
    return found
