"""A planted failure-path bug on a tree the simulator does not model (Debian's 7.2, fetched with
KERNEL_TREE=debian:sid:linux-source-7.2): `forkdiff vm-test SUITES=faults` on the 7.2 kernel
built with tests/planted/leak-vma-on-anon-vma-fork-failure-7.2.patch must fail through the
kernel-only leak check alone (no prediction is made: the model's verdicts are `skipped`), and
the clean 7.2 kernel passes the same run.

Real parts only: the 7.2 kernel is built with the patch, booted in QEMU, fail-nth injects the
failures, faultsweep reads the slab counters in the guest. (Cold: fetching the tree, a source
copy and a kernel build per run; warm, about a minute per run.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.vm

REPO = Path(__file__).resolve().parents[2]
PLANTED = REPO / "tests" / "planted" / "leak-vma-on-anon-vma-fork-failure-7.2.patch"
TREE = "debian:sid:linux-source-7.2"
SCENARIO = "anon-touched-21"


def vm_test(out: Path, patch: Path | None) -> tuple[int, list[dict], str]:
    env = {**os.environ, "SUITES": "faults", "SCENARIOS": SCENARIO, "VARIANTS": "patched",
           "OUT": str(out), "KERNEL_TREE": TREE, "PATCHES": str(patch) if patch else ""}
    r = subprocess.run([sys.executable, "-m", "orchestrator", "vm-test"], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=3600)
    print(r.stderr[-3000:])
    verdicts = [json.loads(x) for x in (out / "verdicts.jsonl").read_text().splitlines()]
    return r.returncode, verdicts, r.stderr + r.stdout


def test_leak_on_unmodelled_tree_is_caught_without_the_model(tmp_path: Path) -> None:
    rc, verdicts, text = vm_test(tmp_path / "run", PLANTED)
    assert rc == 1
    assert "simulator models 6.12; this tree 7.2." in text and "kernel-only checks" in text
    skipped = [v for v in verdicts if v["verdict"] == "skipped"]
    assert len(skipped) == 1 and "fork_failure=teardown" in skipped[0]["detail"]
    assert not [v for v in verdicts if v["measurement"] in ("fault_outcome", "checks_per_fork")]
    bad = [v for v in verdicts if v["verdict"] in ("mismatch", "error", "crashed", "hung")]
    per_k = [v for v in bad if v["measurement"] == "leak_after_fork"]
    # only leaks fail, and each leaking fork left exactly its one new vm_area_struct behind
    assert per_k and {v["measurement"] for v in bad} == {"leak_after_fork", "sweep_leak"}
    assert all(v["observed"] == "vm_area_struct +1" and "LEAK at k=" in v["detail"] for v in per_k)
    sweep = [v for v in bad if v["measurement"] == "sweep_leak"]
    assert len(sweep) == 1 and sweep[0]["observed"] == f"vm_area_struct +{len(per_k)}"
    # the check is per k, not a blanket failure: the bug is on dup_mmap()'s error path, so only
    # failed forks leak; absorbed forks do not, nor failed forks whose failure came before the
    # new VMA existed (e.g. its own vm_area_struct allocation)
    assert all("left after the failed fork" in v["detail"] for v in per_k)
    fine = [v for v in verdicts if v["measurement"] == "leak_after_fork" and v["key"].startswith("k=")
            and v["verdict"] == "match"]
    assert any("(absorbed fork" in v["detail"] for v in fine)
    assert any("(failed fork" in v["detail"] for v in fine)


def test_clean_unmodelled_tree_passes(tmp_path: Path) -> None:
    rc, verdicts, text = vm_test(tmp_path / "run", None)
    assert rc == 0, [v for v in verdicts if v["verdict"] not in ("match", "skipped", "info")][:5]
    assert "PASS (model not used for 1 jobs" in text
    lk = [v for v in verdicts if v["measurement"] in ("leak_after_fork", "sweep_leak")]
    assert len(lk) > 50 and all(v["verdict"] == "match" for v in lk)
