"""`forkdiff export kcidb` on the folder of a real run made here: `forkdiff vm-test` with the maps
suite, one scenario, the patched faults kernel (about 20 s with the kernel cached), then the
export, validated with kcidb-io's own validator; the build it names is the kernel the run booted."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

from kcidb_io.schema import LATEST

from orchestrator.prepare.kernel import build_kernel, gcc_version

REPO = Path(__file__).resolve().parents[2]


def test_export_of_a_fresh_run_is_valid_and_names_the_booted_kernel(tmp_path: Path) -> None:
    out = tmp_path / "run"
    env = {**os.environ, "SUITES": "maps", "SCENARIOS": "dontfork-only", "VARIANTS": "patched",
           "OUT": str(out), "PATCHES": ""}
    r = subprocess.run([sys.executable, "-m", "orchestrator", "vm-test"], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=1800)
    assert r.returncode == 0, r.stderr[-3000:]
    r = subprocess.run([sys.executable, "-m", "orchestrator", "export", "kcidb", str(out)],
                       cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    data = json.loads((out / "kcidb.json").read_text())
    LATEST.validate_exactly(data)  # kcidb-io's own validator

    kernel = build_kernel("patched", "faults", patches=(), progress=False)  # cached: what was booted
    (build,) = data["builds"]
    (checkout,) = data["checkouts"]
    assert build["checkout_id"] == checkout["id"]
    assert checkout["patchset_hash"] == ""  # the tree as it is: no patches
    assert build["misc"]["release"] == kernel.release
    assert build["misc"]["config_sha256"] == hashlib.sha256(kernel.config.read_bytes()).hexdigest()
    assert build["misc"]["bzimage_sha256"] == hashlib.sha256(kernel.bzimage.read_bytes()).hexdigest()
    assert build["compiler"] == gcc_version()

    verdicts = [json.loads(x) for x in (out / "verdicts.jsonl").read_text().splitlines()]
    groups = {(v["suite"], v["scenario"], v["measurement"]) for v in verdicts}
    assert {t["path"] for t in data["tests"]} == {f"forkdiff.{s}.{sc}.{m}" for s, sc, m in groups}
    assert all(t["build_id"] == build["id"] for t in data["tests"])
    assert {t["status"] for t in data["tests"]} == {"PASS"}  # the clean kernel matches the model
