"""A planted failure-path bug on a new tree fetched with KERNEL_TREE=debian:sid:linux-source-7.2:
`forkdiff vm-test SUITES=faults` on the 7.2 kernel built with
tests/planted/leak-vma-on-anon-vma-fork-failure-7.2.patch must fail on the leak checks alone,
per k: every fault outcome still matches the 7.2 model (the bug changes what is freed, not what
is allocated). The clean 7.2 kernel passing the same kind of run is tests/vm/test_tree_72.py.

Real parts only: the 7.2 kernel is built with the patch, booted in QEMU, fail-nth injects the
failures, faultsweep reads the slab counters in the guest. (Cold: fetching the tree, a source
copy and a kernel build per run; warm, about a minute per run.)"""

from __future__ import annotations

from pathlib import Path

from vmtest_run import run_vm_test

REPO = Path(__file__).resolve().parents[2]
PLANTED = REPO / "tests" / "planted" / "leak-vma-on-anon-vma-fork-failure-7.2.patch"
TREE = "debian:sid:linux-source-7.2"
SCENARIO = "anon-touched-21"


def vm_test(out: Path, patch: Path | None) -> tuple[int, list[dict], str]:
    rc, verdicts, _, text = run_vm_test(out, SUITES="faults", SCENARIOS=SCENARIO, VARIANTS="patched",
                                        KERNEL_TREE=TREE, PATCHES=str(patch) if patch else "")
    return rc, verdicts, text


def test_leak_on_new_tree_is_caught_per_k(tmp_path: Path) -> None:
    rc, verdicts, text = vm_test(tmp_path / "run", PLANTED)
    assert rc == 1
    assert "the simulator models this tree (7.2." in text
    assert not [v for v in verdicts if v["verdict"] == "skipped"]
    fo = [v for v in verdicts if v["measurement"] == "fault_outcome"]
    assert fo and all(v["verdict"] == "match" for v in fo)
    bad = [v for v in verdicts if v["verdict"] in ("mismatch", "error", "crashed", "hung")]
    per_k = [v for v in bad if v["measurement"] == "leak_after_fork"]
    # only leaks fail, and each leaking fork left exactly its one new vm_area_struct behind
    assert per_k and {v["measurement"] for v in bad} == {"leak_after_fork", "sweep_leak"}
    assert all(v["observed"] == "vm_area_struct +1" for v in per_k)
    sweep = [v for v in bad if v["measurement"] == "sweep_leak"]
    assert len(sweep) == 1 and sweep[0]["observed"] == f"vm_area_struct +{len(per_k)}"
    # the check is per k, not a blanket failure: the bug is on dup_mmap()'s error path, so
    # absorbed forks and forks failing before the new VMA existed leak nothing
    fine = [v for v in verdicts if v["measurement"] == "leak_after_fork" and v["key"].startswith("k=")
            and v["verdict"] == "match"]
    assert fine
