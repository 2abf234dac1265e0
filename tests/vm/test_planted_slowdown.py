"""The spawn suite's kernel-vs-simulator timing verdict, for real: `forkdiff vm-test`
(SUITES=spawn, two VMA counts, the faults kernels of both variants, QEMU -icount) on the clean tree
passes, and with PATCHES=tests/planted/store-every-vma-twice.patch (dup_mmap() stores every
VMA twice, work the simulator's dup_mmap() does not do) it reports a spawn mismatch at both
counts. The work model is fitted on the baseline kernel's measurements only (the seed's layout
at these counts plus the calibration layouts), so the planted patch, which only touches the
patched kernel, cannot leak into the fit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PLANTED = REPO / "tests" / "planted" / "store-every-vma-twice.patch"
COUNTS = (1621, 6421)


def _vm_test(out: Path, patches: str = "") -> tuple[int, list[dict]]:
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    # INSN_PROFILE=0: the per-run work model in both runs (without PATCHES= the instruction
    # model would judge the clean run instead: tests/pure/test_insn_model.py)
    env.update(SUITES="spawn", VMAS=",".join(map(str, COUNTS)), DURATION="1", OUT=str(out),
               PATCHES=patches, INSN_PROFILE="0")
    p = subprocess.run([sys.executable, "-m", "orchestrator", "vm-test"], cwd=REPO, env=env,
                       text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=3600)
    print(p.stdout[-6000:])
    rows = [json.loads(line) for line in (out / "verdicts.jsonl").read_text().splitlines() if line]
    return p.returncode, rows


def _spawn_rows(rows: list[dict]) -> dict[str, dict]:
    return {r["scenario"]: r for r in rows
            if r["suite"] == "spawn" and r["axis"] == "kernel-vs-simulator"
            and r["variant"] == "patched" and r["measurement"] == "forks_per_s"}  # the work model's


def test_clean_kernel_passes_and_planted_slowdown_is_a_mismatch(tmp_path: Path) -> None:
    rc, rows = _vm_test(tmp_path / "clean")
    clean = _spawn_rows(rows)
    assert set(clean) == {f"total-{n}" for n in COUNTS}
    for name, r in clean.items():
        assert r["verdict"] == "match", (name, r)
    assert rc == 0, [r for r in rows if r["verdict"] not in ("match", "info")]
    model = json.loads((tmp_path / "clean" / "cost_model.json").read_text())["model"]
    assert model["fitted_on"]["variant"] == "baseline"
    assert len(model["fitted_on"]["layouts"]) > 2  # the seed's layout and calibration layouts

    rc, rows = _vm_test(tmp_path / "planted", str(PLANTED))
    planted = _spawn_rows(rows)
    assert set(planted) == {f"total-{n}" for n in COUNTS}
    for name, r in planted.items():
        assert r["verdict"] == "mismatch", (name, r)
        # slower than predicted: the kernel does more than the model's dup_mmap()
        assert float(r["observed"]) < float(r["predicted"]), (name, r)
    assert rc != 0
    # with PATCHES= the run has the tree as it is (reference) beside the tree + PATCHES, and
    # the patched kernel is predicted from the reference kernel's measurement (measured A/B),
    # never from the patched kernel's own
    for r in planted.values():
        assert "measured A/B" in r["rule"] and "reference observed" in r["detail"], r
