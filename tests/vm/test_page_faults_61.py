"""Page allocation faults on 6.1 (FAULTS=page), end to end on the real 6.1 faults kernel, which
has no fault-injection stack filter: fail_page_alloc counts every page allocation of the fork
syscall (the child's thread stack, its pgd, its page tables; new slab pages are kept out by the
guest's set-up: min_partial, flush instead of shrink, a warm-up fork). The clean kernel's sweep
is exact (checks per fork, every k's outcome, nothing left behind), and a planted bug in
6.1 dup_mmap()'s copy_page_range() failure branch (tests/planted/61-pt-error-ignored.patch:
the error is dropped, fork() succeeds) is caught at exactly the ks whose injected failure is a
page table.

Real parts only: the kernels are built (the planted one with PATCHES=), booted in QEMU,
fail-nth injects the failures, faultsweep reads slab counters and /proc/vmstat in the guest.
The tree is FORKDIFF_TEST_TREE_6_1 (a path), else `debian:bookworm:linux-source-6.1`; without
either the test skips, saying so."""

from __future__ import annotations

from pathlib import Path

import pytest
from vmtest_run import run_vm_test

pytestmark = pytest.mark.vm

REPO = Path(__file__).resolve().parents[2]
PLANTED = REPO / "tests" / "planted" / "61-pt-error-ignored.patch"
SCENARIO = "anon-touched-21"


def _k(v: dict) -> int | None:
    key = v["key"].rsplit("k=", 1)
    return int(key[1]) if len(key) == 2 and key[1].isdigit() else None


def test_6_1_page_sweep_is_exact_and_planted_error_drop_is_caught(tmp_path: Path, tree61: str) -> None:
    rc, verdicts, preds, _ = run_vm_test(tmp_path / "clean", KERNEL_TREE=tree61, SUITES="faults",
                                         SCENARIOS=SCENARIO, VARIANTS="baseline", FAULTS="page")
    assert rc == 0
    fo_pred = {p["k"]: p for p in preds if p["measurement"] == "fault_outcome"}
    sites = [fo_pred[k].get("site") for k in sorted(fo_pred) if fo_pred[k].get("injected")]
    # kernel/fork.c copy_process(): the thread stack, then the pgd, then dup_mmap's page tables
    assert sites[:2] == ["alloc_thread_stack_node", "pgd_alloc"]
    assert len(sites) > 2 and set(sites[2:]) == {"copy_page_range"}
    checks = [v for v in verdicts if v["measurement"] == "checks_per_fork"]
    assert len(checks) == 1 and checks[0]["verdict"] == "match" and int(checks[0]["observed"]) == len(sites)
    fo = {_k(v): v for v in verdicts if v["measurement"] == "fault_outcome"}
    assert all(fo[k]["verdict"] == "match" and fo[k]["observed"] == "ENOMEM" for k in range(1, len(sites) + 1))
    assert all(v["verdict"] in ("match", "skipped") for v in verdicts)
    leaks = [v for v in verdicts if v["measurement"] in ("leak_after_fork", "sweep_leak")]
    assert len(leaks) > len(sites) and all(v["verdict"] == "match" for v in leaks)

    page_ks = {k for k, p in fo_pred.items() if p.get("injected") and p.get("site") == "copy_page_range"}
    rc, verdicts, _, _ = run_vm_test(tmp_path / "planted", KERNEL_TREE=tree61, SUITES="faults",
                                     SCENARIOS=SCENARIO, VARIANTS="patched", FAULTS="page",
                                     PATCHES=str(PLANTED))
    assert rc == 1
    bad = {_k(v) for v in verdicts if v["verdict"] not in ("match", "skipped")
           and v["measurement"] == "fault_outcome"}
    # every page-table k: fork() succeeds where ENOMEM is predicted; the stack and pgd ks pass
    assert bad == page_ks
