"""Planted failure-path bugs, caught end to end: `forkdiff vm-test SUITES=faults` on a patched
kernel built with one of tests/planted/*.patch (PATCHES=) must fail with leak verdicts that
name the cache, the count, k and the failing allocation site, at exactly the k the bug can
leak at; the same run on the clean kernel passes (tests/vm/test_suites.py checks the clean
kernels of both variants leak nothing, through the same comparison).

Real parts only: the kernel is built with the patch, booted in QEMU, fail-nth injects the
failures, faultsweep reads the slab counters in the guest."""

from __future__ import annotations

import re
from pathlib import Path

from vmtest_run import run_vm_test

REPO = Path(__file__).resolve().parents[2]
PLANTED = REPO / "tests" / "planted"
SCENARIO = "anon-touched-21"


def vm_test(out: Path, patch: str | None) -> tuple[int, list[dict], list[dict]]:
    rc, verdicts, preds, _ = run_vm_test(out, SUITES="faults", SCENARIOS=SCENARIO, VARIANTS="patched",
                                         PATCHES=str(PLANTED / patch) if patch else "")
    return rc, verdicts, preds


def outcomes(preds: list[dict]) -> dict[int, dict]:
    return {p["k"]: p for p in preds if p["measurement"] == "fault_outcome"
            and p.get("variant") == "patched"}


def leaks(verdicts: list[dict]) -> dict[int, dict]:
    return {int(v["key"][2:]): v for v in verdicts
            if v["measurement"] == "leak_after_fork" and v["key"].startswith("k=")
            and v["verdict"] == "mismatch"}


def test_anon_vma_leak_on_chain_failure_is_caught(tmp_path: Path) -> None:
    """anon_vma_fork() forgets put_anon_vma() when its anon_vma_chain allocation fails: one
    anon_vma left behind at exactly the k whose injected failure is that allocation."""
    rc, verdicts, preds = vm_test(tmp_path / "run", "leak-anon-vma-on-chain-failure.patch")
    assert rc == 1
    po = outcomes(preds)
    expected = {k for k, p in po.items() if p.get("fork") == "ENOMEM"
                and p.get("site") == "anon_vma_fork" and p.get("cache") == "anon_vma_chain"}
    found = leaks(verdicts)
    assert expected and set(found) == expected
    for k, v in found.items():
        assert v["observed"] == "anon_vma +1"
        assert f"k={k}" in v["detail"] and "anon_vma_fork (anon_vma_chain" in v["detail"]
    # fault outcomes themselves still match: only the leak verdicts see this bug
    fo = [v for v in verdicts if v["measurement"] == "fault_outcome"]
    assert fo and all(v["verdict"] == "match" for v in fo)
    sweep = [v for v in verdicts if v["measurement"] == "sweep_leak"]
    assert len(sweep) == 1 and sweep[0]["observed"] == f"anon_vma +{len(expected)}"
    md = (tmp_path / "run" / "report.md").read_text()
    assert re.search(rf"\| patched \| patched \| {SCENARIO} \| anon_vma \| {len(expected)} \|", md)


def test_teardown_range_ending_before_the_marker_is_caught(tmp_path: Path) -> None:
    """free_pgtables() leaves the VMA before the XA_ZERO_ENTRY marker out of the anon_vma
    teardown: failed forks that released at least one copied VMA with an anon_vma leave its
    anon_vma_chains behind; forks without a marker (absorbed, or failed before any copy) do
    not."""
    rc, verdicts, preds = vm_test(tmp_path / "run", "teardown-ends-before-marker.patch")
    assert rc == 1
    po = outcomes(preds)
    found = leaks(verdicts)
    assert found
    for k, v in found.items():
        p = po[k]
        assert p["fork"] == "ENOMEM" and p["marker"] is not None and p["child_vmas_released"] > 0
        assert "anon_vma_chain +" in v["observed"]
        assert f"k={k}" in v["detail"] and "XA_ZERO_ENTRY" in v["detail"]
    absorbed = {k for k, p in po.items() if p.get("fork") == "success"}
    assert not absorbed & set(found)
    sweep = [v for v in verdicts if v["measurement"] == "sweep_leak"]
    assert len(sweep) == 1 and sweep[0]["verdict"] == "mismatch"
    html = (tmp_path / "run" / "report.html").read_text()
    assert "Leaks per cache" in html and 'class="cell enomem leak"' in html


def test_clean_kernel_passes(tmp_path: Path) -> None:
    rc, verdicts, _ = vm_test(tmp_path / "run", None)
    assert rc == 0
    lk = [v for v in verdicts if v["measurement"] in ("leak_after_fork", "sweep_leak")]
    assert len(lk) > 50 and all(v["verdict"] == "match" for v in lk)
