"""The spawn suite's kernel-vs-simulator timing verdict on 7.2, for real. 7.2 has no pre-series
baseline (patches/baseline does not apply), so with PATCHES= the run's `baseline` is the tree as
it is, the reference kernel, compared with the tree's own model (orchestrator/prepare/variants.py).
The work model is fitted on it (the seed's layout at two counts plus the calibration layouts);
the patched kernel is predicted from its measurement at the same count (measured A/B: both do
the same modelled work, so the band is the measurement's).

`forkdiff vm-test` (KERNEL_TREE = the 7.2 tree, SUITES=spawn, two VMA counts, DURATION=1, the
faults kernels, QEMU -icount) with PATCHES=tests/planted/72-comment-only.patch (a comment changed in
mm/mmap.c: the same work) passes at both counts; with
PATCHES=tests/planted/72-slowdown-2pct.patch (about 60 instructions more per copied VMA, work
the simulator's dup_mmap() does not do: 2-3 % slower) both counts are spawn mismatches,
observed < predicted.
The tree is the tree72 fixture's (conftest.py: FORKDIFF_TEST_TREE_7_2, else
debian:sid:linux-source-7.2; the test skips without either)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from vmtest_run import run_vm_test

REPO = Path(__file__).resolve().parents[2]
CLEAN = REPO / "tests" / "planted" / "72-comment-only.patch"
PLANTED = REPO / "tests" / "planted" / "72-slowdown-2pct.patch"
COUNTS = (121, 1621)  # 121 as the run's first count: see test_ab_slowdown.py


def _vm_test(out: Path, tree: str, patch: Path) -> tuple[int, dict[str, dict], dict, dict]:
    """(exit status, the patched kernel's spawn rows by scenario, cost_model.json, run.json)."""
    rc, verdicts, _, _ = run_vm_test(out, KERNEL_TREE=tree, SUITES="spawn", DURATION="1",
                                     VMAS=",".join(map(str, COUNTS)), PATCHES=str(patch),
                                     VARIANTS="", MAKEFLAGS="", MFLAGS="", MAKELEVEL="")
    rows = {r["scenario"]: r for r in verdicts if r["suite"] == "spawn"
            and r["axis"] == "kernel-vs-simulator" and r["variant"] == "patched"
            and r["measurement"] == "forks_per_s"}  # the work model's (insn model: its own rows)
    cost = json.loads((out / "cost_model.json").read_text())
    return rc, rows, cost, json.loads((out / "run.json").read_text())


def test_72_reference_kernel_passes_a_clean_patch_and_catches_a_planted_slowdown(tmp_path: Path,
                                                                                  tree72: str) -> None:
    rc, clean, cost, meta = _vm_test(tmp_path / "clean", tree72, CLEAN)
    assert meta["model map"] == {"baseline": "patched", "patched": "patched"}
    assert meta["made of"] == "baseline: the tree as it is; patched: the tree + PATCHES"
    fo = cost["model"]["fitted_on"]
    assert fo["variant"] == "baseline" and fo["model"] == "patched"
    assert "spawn" in fo["layouts"] and len(fo["layouts"]) > 2  # seed layout + calibration
    assert fo["vmas"] == list(COUNTS)
    assert set(clean) == {f"total-{n}" for n in COUNTS}
    for name, r in clean.items():
        assert r["verdict"] == "match", (name, r)
        assert r["model"] == "patched" and "measured A/B" in r["rule"] and "measurement" in r["band"]
    assert rc == 0

    rc, planted, cost_p, _ = _vm_test(tmp_path / "planted", tree72, PLANTED)
    assert set(planted) == {f"total-{n}" for n in COUNTS}
    for name, r in planted.items():
        assert r["verdict"] == "mismatch", (name, r)
        # slower than predicted: the kernel does more than the model's dup_mmap()
        assert float(r["observed"]) < float(r["predicted"]), (name, r)
        # the prediction comes from the reference kernel's measurements and the model, never
        # from the patched kernel's: it does not move with the planted patch beyond -icount's
        # run-to-run spread (<= 0.2%) and the refit on it
        assert float(r["predicted"]) == pytest.approx(float(clean[name]["predicted"]), rel=0.01)
    assert rc != 0
