"""orchestrator/conduct/build.py side_by_side: the order kernels are built in. The builder is a
fake (it records calls, builds nothing): the real builds are what every vm-test does."""

from __future__ import annotations

import threading

import pytest

from orchestrator.conduct.build import side_by_side

KERNELS = (("baseline", "faults"), ("patched", "faults"), ("baseline", "perf"), ("patched", "perf"))


def test_profiles_side_by_side_variants_in_order():
    both_started = threading.Barrier(2, timeout=10)  # breaks unless two profiles build at once
    log: list[str] = []
    lock = threading.Lock()

    def one(v: str, profile: str) -> str:
        with lock:
            log.append(f"start {v}/{profile}")
        if v == "baseline":
            both_started.wait()
        with lock:
            log.append(f"end {v}/{profile}")
        return f"{v}/{profile}"

    built = side_by_side(KERNELS, one)
    assert built == {k: f"{k[0]}/{k[1]}" for k in KERNELS}
    for profile in ("faults", "perf"):  # a profile's second variant only after its first
        assert log.index(f"end baseline/{profile}") < log.index(f"start patched/{profile}")


def test_one_profile_is_sequential():
    calls: list[tuple[str, str]] = []
    side_by_side(KERNELS[:2], lambda v, p: calls.append((v, p)))
    assert calls == list(KERNELS[:2])


def test_a_failing_build_is_raised_after_the_other_profile_stops():
    done: list[str] = []

    def one(v: str, profile: str) -> str:
        if profile == "perf":
            raise RuntimeError("perf does not build")
        done.append(f"{v}/{profile}")
        return v

    with pytest.raises(RuntimeError, match="perf does not build"):
        side_by_side(KERNELS, one)
    assert done == ["baseline/faults", "patched/faults"]


def test_the_tree_as_it_is_is_built_first():
    """The plan's build order: the kernel of the tree as it is first, so that the others start
    from its objects (kernel._Build.seed); otherwise run order."""
    from orchestrator.conduct.plan import build_order
    from orchestrator.prepare import variants as v

    assert build_order(("baseline", "patched"), {"baseline": v.TREE_BASELINE, "patched": v.TREE}) \
        == ["patched", "baseline"]
    # 7.2 + PATCHES: the baseline is the tree as it is
    assert build_order(("baseline", "patched"), {"baseline": v.TREE, "patched": v.TREE_PATCHES}) \
        == ["baseline", "patched"]
    assert build_order(("baseline", "reference", "patched"),
                       {"baseline": v.TREE_BASELINE, "reference": v.TREE, "patched": v.TREE_PATCHES}) \
        == ["reference", "baseline", "patched"]
