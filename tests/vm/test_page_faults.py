"""Page-table allocation faults (FAULTS=slab,page), end to end on the real 6.12 faults kernel:
`forkdiff vm-test SUITES=faults` with fail_page_alloc counting the child's page tables under
copy_page_range. The clean kernel's sweep is exact (checks per fork, every k's outcome, the
slab objects and page-table pages left), and a planted bug in dup_mmap()'s copy_page_range()
failure branch (tests/planted/pt-marker-on-failing-vma.patch), which the slab-only sweep cannot
reach, is caught at exactly the ks whose injected failure is a page table.

Real parts only: the kernels are built (the planted one with PATCHES=), booted in QEMU,
fail-nth injects the failures, faultsweep reads slab counters and /proc/vmstat in the guest."""

from __future__ import annotations

from pathlib import Path

from vmtest_run import run_vm_test

REPO = Path(__file__).resolve().parents[2]
PLANTED = REPO / "tests" / "planted" / "pt-marker-on-failing-vma.patch"
SCENARIO = "anon-touched-21"


def vm_test(out: Path, faults: str, patch: Path | None = None) -> tuple[int, list[dict], list[dict]]:
    rc, verdicts, preds, _ = run_vm_test(out, SUITES="faults", SCENARIOS=SCENARIO, VARIANTS="patched",
                                         FAULTS=faults, PATCHES=str(patch) if patch else "")
    return rc, verdicts, preds


def page_ks(preds: list[dict]) -> set[int]:
    return {p["k"] for p in preds if p["measurement"] == "fault_outcome" and p.get("injected")
            and p.get("site") == "copy_page_range"}


def test_clean_kernel_page_sweep_is_exact(tmp_path: Path) -> None:
    rc, verdicts, preds = vm_test(tmp_path / "run", "slab,page")
    assert rc == 0
    counts = next(p for p in preds if p["measurement"] == "counts")
    assert counts["page_checks"] > 0 and counts["slab_checks"] > 0
    checks = [v for v in verdicts if v["measurement"] == "checks_per_fork"]
    assert len(checks) == 1 and checks[0]["verdict"] == "match"
    assert int(checks[0]["observed"]) == counts["slab_checks"] + counts["page_checks"]
    ks = page_ks(preds)
    assert len(ks) == counts["page_checks"]
    fo = {int(v["key"][2:]): v for v in verdicts if v["measurement"] == "fault_outcome"}
    assert ks <= set(fo) and all(fo[k]["verdict"] == "match" and fo[k]["observed"] == "ENOMEM" for k in ks)
    assert all(v["verdict"] in ("match", "skipped") for v in verdicts)
    leaks = [v for v in verdicts if v["measurement"] in ("leak_after_fork", "sweep_leak")]
    assert len(leaks) > len(fo) and all(v["verdict"] == "match" for v in leaks)


def predicted_page_ks() -> list[int]:
    """The ks whose injected failure is a page table, from the simulator alone (the 6.12
    model, FAULTS=slab,page settings, the faultsweep binary that runs in the guest)."""
    from orchestrator.analysis.job_predictions import guest_elf
    from simulator.fork import PAGE_SETTINGS
    from simulator.predict import records
    from simulator.scenario import load

    recs = records(load(REPO / "scenarios" / f"{SCENARIO}.yaml"), "patched", program="faultsweep",
                   elf=guest_elf("faultsweep"), settings=PAGE_SETTINGS,
                   measurements=("fault_outcome",))
    return sorted(page_ks(recs))


def test_planted_marker_on_failing_vma_is_caught_only_by_the_page_sweep(tmp_path: Path) -> None:
    """The marker put on the VMA whose page tables failed: exit_mmap() stops before that VMA
    and its BUG_ON(count != mm->map_count) fires, at the first page-table k; the suite skips
    that step and the next crash comes at the next page-table k, until it gives up
    (MAX_SKIPPED_STEPS). The slab-only sweep of the same kernel never reaches the branch."""
    from orchestrator.run.suites import MAX_SKIPPED_STEPS

    ks = predicted_page_ks()
    assert len(ks) > MAX_SKIPPED_STEPS
    rc, verdicts, _ = vm_test(tmp_path / "page", "slab,page", PLANTED)
    assert rc == 1
    crashed = [v for v in verdicts if v["verdict"] == "crashed"]
    assert sorted(int(v["key"].rsplit("k=", 1)[1]) for v in crashed) == ks[:MAX_SKIPPED_STEPS + 1]
    assert all("kernel BUG at mm/mmap.c" in v["detail"] for v in crashed)
    rc, verdicts, _ = vm_test(tmp_path / "slab", "slab", PLANTED)
    assert rc == 0 and verdicts and all(v["verdict"] in ("match", "skipped") for v in verdicts)


PLANTED_72 = REPO / "tests" / "planted" / "72-pt-teardown-before-failing-vma.patch"


def _run_72(out: Path, tree72: str, patch: Path | None) -> tuple[int, list[dict], list[dict]]:
    rc, verdicts, preds, _ = run_vm_test(out, KERNEL_TREE=tree72, SUITES="faults", SCENARIOS=SCENARIO,
                                         VARIANTS="patched", FAULTS="slab,page",
                                         PATCHES=str(patch) if patch else "")
    return rc, verdicts, preds


def _k(v: dict) -> int | None:
    key = v["key"].rsplit("k=", 1)
    return int(key[1]) if len(key) == 2 and key[1].isdigit() else None


def test_7_2_page_sweep_is_exact_and_planted_teardown_is_caught(tmp_path: Path, tree72: str) -> None:
    """7.2: dup_mmap() tears a failed fork down in place (end = the next VMA's start after a
    failed copy_page_range()); the page-table checks, outcomes and leaks are as predicted.
    With the teardown stopping before the VMA whose page tables failed, what fails is at
    page-table ks only (a leak, or the kernel's own check when the mm is freed), the first one
    included."""
    rc, verdicts, preds = _run_72(tmp_path / "clean", tree72, None)
    assert rc == 0
    counts = next(p for p in preds if p["measurement"] == "counts")
    assert counts["page_checks"] > 0
    checks = [v for v in verdicts if v["measurement"] == "checks_per_fork"]
    assert len(checks) == 1 and checks[0]["verdict"] == "match"
    fo = {int(v["key"][2:]): v for v in verdicts if v["measurement"] == "fault_outcome"}
    ks = page_ks(preds)
    assert ks and all(fo[k]["verdict"] == "match" and fo[k]["observed"] == "ENOMEM" for k in ks)
    assert all(v["verdict"] in ("match", "skipped") for v in verdicts)
    if not PLANTED_72.is_file():
        return
    rc, verdicts, _ = _run_72(tmp_path / "planted", tree72, PLANTED_72)
    assert rc == 1
    bad = {_k(v) for v in verdicts if v["verdict"] not in ("match", "skipped")
           and v["measurement"] != "sweep_leak"}
    assert bad and bad <= ks and min(ks) in bad
