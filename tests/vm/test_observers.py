"""Observers while forks fail (OBSERVERS=, docs/observers.md), end to end on the real 6.12
faults kernel (swap on zram is in the faults profile): `forkdiff vm-test SUITES=faults` with
the swapoff, rmap and proc observers running beside the sweep.

- The clean kernel with every observer: the plain sweep's verdicts stay exact (checks per fork,
  every k's outcome, the objects and page tables left), every observer overlapped some forks,
  and the observe program ended cleanly.
- tests/planted/swapoff-walks-unstable-mm.patch (unuse_mm() without its
  check_stable_address_space() guard): with OBSERVERS=swapoff, swapoff's try_to_unuse() walks
  a failing child's half-built tree and takes the XA_ZERO_ENTRY marker for a VMA; the kernel
  oopses in the observer's task and the verdict names the observer and the step k.

Real parts only: kernels built (the planted one with PATCHES=), booted in QEMU, zram swap,
fail-nth, the guest programs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from vmtest_run import run_vm_test

pytestmark = pytest.mark.vm

REPO = Path(__file__).resolve().parents[2]
PLANTED = REPO / "tests" / "planted" / "swapoff-walks-unstable-mm.patch"
SCENARIO = "anon-touched-21"
# the planted bug needs a fork long enough to be preempted half way (421 VMAs: about 2 ms of
# guest time per fork), see docs/observers.md; the run gives up after MAX_SKIPPED_STEPS + 1
# crashes, so it stays short
PLANTED_SCENARIO = "anon-touched-421"


def vm_test(out: Path, observers: str, patch: Path | None = None,
            scenario: str = SCENARIO) -> tuple[int, list[dict], list[dict]]:
    rc, verdicts, preds, _ = run_vm_test(out, SUITES="faults", SCENARIOS=scenario, VARIANTS="patched",
                                         OBSERVERS=observers, OBSERVER_SEED="1",
                                         PATCHES=str(patch) if patch else "")
    return rc, verdicts, preds


def test_clean_kernel_with_all_observers_is_exact(tmp_path: Path) -> None:
    rc, verdicts, preds = vm_test(tmp_path / "run", "all")
    assert rc == 0
    assert all(v["verdict"] in ("match", "skipped") for v in verdicts)
    assert all(v["profile"] == "faults" for v in verdicts)
    counts = next(p for p in preds if p["measurement"] == "counts")
    checks = [v for v in verdicts if v["measurement"] == "checks_per_fork"]
    assert len(checks) == 1 and int(checks[0]["observed"]) == counts["checks"]
    fo = [v for v in verdicts if v["measurement"] == "fault_outcome"]
    assert len(fo) == counts["checks"] + 1  # every k, and the first k the fork does not reach
    # each fault_outcome row says which observers overlapped its fork
    for v in fo:
        if v["observed"] != "not reached":
            tail = v["detail"].partition(" | observers: ")[2]
            assert {p.rsplit(" ", 1)[0] for p in tail.split(", ")} == {"swapoff", "rmap", "proc"}, v
    ran = {v["key"]: v for v in verdicts if v["measurement"] == "observer_ran"}
    assert set(ran) == {"swapoff", "rmap", "proc"}
    for v in ran.values():
        overlapped = int(re.search(r"forks overlapped: (\d+) of", v["detail"]).group(1))
        assert overlapped > 0, v
    leaks = [v for v in verdicts if v["measurement"] in ("leak_after_fork", "sweep_leak")]
    assert len(leaks) > len(fo) - 1


def test_planted_swapoff_without_guard_is_caught(tmp_path: Path) -> None:
    """swapoff reaches a failing child through the mmlist and, without the guard, reads the
    XA_ZERO_ENTRY marker (0x406) as a VMA: a NULL-pointer oops in try_to_unuse() (unuse_mm()
    is inlined there) in the observer's task, at a k whose failure leaves the marker."""
    rc, verdicts, _ = vm_test(tmp_path / "planted", "swapoff", PLANTED, PLANTED_SCENARIO)
    assert rc == 1
    crashed = [v for v in verdicts if v["verdict"] == "crashed"]
    assert crashed
    for v in crashed:
        m = re.search(r"during sweep step k=(\d+) in observer swapoff \(task obs-swapoff\)", v["observed"])
        assert m, v["observed"]
        assert "try_to_unuse" in v["detail"] and "Comm: obs-swapoff" in v["detail"]
