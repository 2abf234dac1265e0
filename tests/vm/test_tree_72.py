"""7.2 end to end (Debian sid's linux-source-7.2): `forkdiff vm-test` on the tree's own kernel
(the patched variant only: patches/baseline does not apply to 7.x) compared with the 7.2 model
the tree's facts select, and a planted 7.2 bug caught by the leak verdicts.

Real parts only: the 7.2 faults kernel is built (with the planted patch for the second test),
booted in QEMU, fail-nth injects the failures, the guest reads the slab counters. The tree is
FORKDIFF_TEST_TREE_7_2 (a path), else `debian:sid:linux-source-7.2`; without either the tests skip,
saying so (the tree72 fixture, conftest.py)."""

from __future__ import annotations

from pathlib import Path

from vmtest_run import run_vm_test

REPO = Path(__file__).resolve().parents[2]
PLANTED = REPO / "tests" / "planted" / "72-leak-chain-on-clone-failure.patch"
SCENARIO = "anon-touched-21"


def vm_test(out: Path, tree: str, suites: str, patch: Path | None = None, scenario: str = SCENARIO
            ) -> tuple[int, list[dict], list[dict]]:
    rc, verdicts, preds, _ = run_vm_test(out, SUITES=suites, SCENARIOS=scenario, VARIANTS="patched",
                                         KERNEL_TREE=tree, PATCHES=str(patch) if patch else "")
    return rc, verdicts, preds


def test_7_2_kernel_matches_its_own_model(tmp_path: Path, tree72: str) -> None:
    rc, verdicts, preds = vm_test(tmp_path / "run", tree72, "maps faults counts")
    bad = [v for v in verdicts if v["verdict"] not in ("match", "info")]
    assert rc == 0 and not bad, bad[:5]
    cfg = next(p["kernel_config"] for p in preds if p["measurement"] == "fault_outcome")
    assert cfg["fork_failure"] == "teardown" and cfg["maple_alloc"] == "sheaves"
    assert any(v["measurement"] == "fault_outcome" for v in verdicts)


def test_7_2_maple_copy_rebalance_and_its_kfree_rcu_are_exact(tmp_path: Path, tree72: str) -> None:
    """mixed-small: the child's NULL stores over adjacent VM_DONTCOPY VMAs rebalance a leaf in
    7.2's maple_copy write path (not in 6.12's), and the node it frees goes to kfree_rcu, whose
    empty rcu_free sheaf is a kmalloc and so a failslab check of its own. Every check, outcome
    and leak row must be exact: the k the model puts on that kmalloc is absorbed with the node
    pending after the per-k wait, and the sweep's end (which waits out kfree_rcu's 5 s drain)
    sees nothing left."""
    rc, verdicts, preds = vm_test(tmp_path / "mixed", tree72, "faults", scenario="mixed-small")
    bad = [v for v in verdicts if v["verdict"] not in ("match", "info")]
    assert rc == 0 and not bad, bad[:5]
    rcu = [p for p in preds if p["measurement"] == "fault_outcome" and p.get("site") == "kfree_rcu_sheaf"]
    assert rcu and all(p.get("pending") == {"maple_node": 1} for p in rcu)
    leak = {v["key"]: v for v in verdicts if v["measurement"] == "leak_after_fork"}
    assert all(leak[f"k={p['k']}"]["observed"] == "maple_node +1" for p in rcu)
    sweep = [v for v in verdicts if v["measurement"] == "sweep_leak"]
    assert len(sweep) == 1 and sweep[0]["predicted"] == "0" and sweep[0]["verdict"] == "match"


def test_7_2_planted_chain_leak_is_caught(tmp_path: Path, tree72: str) -> None:
    """anon_vma_fork() forgets anon_vma_chain_free() of its preallocated chain when
    anon_vma_clone() fails: one anon_vma_chain left behind at exactly the k whose injected
    failure is a chain of the clone; every other k and the fault outcomes still match."""
    rc, verdicts, preds = vm_test(tmp_path / "run", tree72, "faults", PLANTED)
    assert rc == 1
    expected = {p["k"] for p in preds if p["measurement"] == "fault_outcome"
                and p.get("fork") == "ENOMEM" and p.get("site") == "anon_vma_clone"}
    found = {int(v["key"][2:]): v for v in verdicts
             if v["measurement"] == "leak_after_fork" and v["key"].startswith("k=")
             and v["verdict"] == "mismatch"}
    assert expected and set(found) == expected
    assert all(v["observed"] == "anon_vma_chain +1" for v in found.values())
    fo = [v for v in verdicts if v["measurement"] == "fault_outcome"]
    assert fo and all(v["verdict"] == "match" for v in fo)
