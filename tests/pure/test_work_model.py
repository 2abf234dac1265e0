"""The timing work model's parts: the simulator's work counts (real simulator runs), scenario
repeat, and the calibration fit (simulator.cost.calibrate) on synthetic measurements made by a
known linear law: a fake standing in for guest measurements, by design of these unit tests."""

from __future__ import annotations

import pandas as pd
import pytest

from orchestrator.analysis.timing import improvement_table
from orchestrator.run.calibration import calibration_scenarios, layout_family
from simulator.cost import FEATURES, CalPoint, calibrate
from simulator.fork import dup_mmap
from simulator.predict import build_parent
from simulator.scenario import from_dict
from simulator.work import fork_work

SEED = {"name": "seed", "groups": [{"count": 1, "touch": "all"}]}


def _work(sc: dict, variant: str, total: int | None = None, **kw) -> dict:
    s = from_dict(sc)
    parent = build_parent(s, "spawn", total)
    return fork_work(parent, dup_mmap(parent, variant, **kw))


def test_repeat_lays_the_groups_out_again_and_round_trips():
    sc = from_dict({"name": "alt", "gap_pages": 0, "repeat": 3,
                    "groups": [{"count": 1, "prot": "rw"}, {"count": 2, "prot": "r"}]})
    lay = sc.layout()
    assert sc.layout_count == len(lay) == 9
    assert [v.prot for v in lay] == ["rw", "r", "r"] * 3
    assert all(a.end == b.start for a, b in zip(lay, lay[1:], strict=False))
    assert sc.guest_args()[:6] == ["--base", "0x100000000", "--gap", "0", "--repeat", "3"]
    assert from_dict(sc.to_dict()) == sc


def test_patched_exact_fit_stores_count_the_same_whether_run_or_not():
    """dup_mmap(replace_entries=False) skips the exact-fit stores on the tree; the work
    counts must not depend on it (one leaf walked, one slot written per copied VMA)."""
    ran = _work(SEED, "patched", 421, replace_entries=True)
    skipped = _work(SEED, "patched", 421, replace_entries=False)
    assert ran == skipped
    assert ran["st_exact_fit"] == ran["vmas_copied"] == 421


def test_work_counts_follow_the_layout():
    gap1 = _work(SEED, "baseline", 1621)
    gap0 = _work({"name": "g0", "gap_pages": 0, "repeat": 800,
                  "groups": [{"count": 1, "prot": "rw"}, {"count": 1, "prot": "r"}]}, "baseline")
    # adjacent VMAs: one leaf slot per VMA instead of two (VMA + gap), so the baseline's bulk
    # store splits about half as often
    assert gap1["iter_slots"] > 1.9 * gap1["iter_vmas"]
    assert gap0["iter_slots"] < 1.1 * gap0["iter_vmas"]
    assert gap0["st_split"] < 0.6 * gap1["st_split"] * gap0["iter_vmas"] / gap1["iter_vmas"]
    half = _work({"name": "df", "repeat": 800,
                  "groups": [{"count": 1, "advice": "dontfork"}, {"count": 1}]}, "baseline")
    assert half["iter_vmas"] - half["vmas_copied"] == 800 == half["iter_vmas"] - half["exit_vmas"]
    # the patched kernel copies the parent's nodes instead of building a tree
    p = _work(SEED, "patched", 1621)
    assert p["dup_nodes"] == p["exit_nodes"] > 0 and p["st_split"] == 0
    assert gap1["dup_nodes"] == 0 and gap1["st_append"] > 0


def test_every_calibration_layout_replays_in_the_simulator():
    for sc in calibration_scenarios():
        s = from_dict({k: v for k, v in sc.items() if k != "calibration"})
        parent = build_parent(s, "spawn")
        assert parent.map_count > s.layout_count
        assert layout_family(sc) == sc["name"]
    assert layout_family({"name": "total-421"}) == "spawn"


def _synthetic(law: dict[str, float]) -> list[CalPoint]:
    """Points whose seconds/fork is exactly the law over real work counts (fake rates)."""
    pts = []
    layouts = {"spawn": (SEED, (221, 1621, 6421))} | {
        sc["name"]: ({k: v for k, v in sc.items() if k != "calibration"}, (None,))
        for sc in calibration_scenarios()}
    for name, (sc, totals) in layouts.items():
        for total in totals:
            w = _work(sc, "baseline", total)
            sec = sum(c * sum(w.get(k, 0) for k in FEATURES[f]) for f, c in law.items())
            pts.append(CalPoint(name, w["iter_vmas"], 1.0 / sec, w))
    return pts


def test_calibration_recovers_a_known_law_and_transfers_between_variants():
    law = {"fork": 60e-6, "vma_copy": 1.2e-6, "vma_visit": 0.1e-6, "maple_slot": 40e-9,
           "maple_node": 150e-9, "anon_vma_fork": 2e-6, "pte": 0.3e-6, "file_vma": 0.8e-6}
    pts = _synthetic(law)
    m = calibrate(pts, tuple(law))
    for f, c in law.items():
        assert m.coef[f] == pytest.approx(c, rel=1e-3), f
    assert max(m.lolo.values()) < 0.1 and m.band_pct < 1.1
    assert m.unidentified == []  # the design identifies every feature without any one layout
    # with a single multi-page anon layout left, only it tells ptes from anon_vma_forks
    few = [p for p in pts if p.layout not in ("calib-anon-touched-800", "calib-anon-4pages-600")]
    assert "calib-anon-8pages-300" in calibrate(few, tuple(law)).unidentified
    assert m.condition_number > 1
    # transfer: a measured baseline rate, moved to the patched kernel's work
    wb, wp = _work(SEED, "baseline", 3221), _work(SEED, "patched", 3221)
    true_b = 1 / m.seconds_per_fork(wb)
    assert m.transfer(true_b, wb, wp) == pytest.approx(m.forks_per_s(wp), rel=1e-9)
    # work both kernels do cancels: a baseline 10 us slower per fork for a reason the model
    # does not know predicts a patched kernel 10 us slower too
    slow_b = 1 / (1 / true_b + 10e-6)
    assert 1 / m.transfer(slow_b, wb, wp) == pytest.approx(1 / m.forks_per_s(wp) + 10e-6)


def test_calibration_needs_points():
    with pytest.raises(ValueError):
        calibrate([])


def test_one_deterministic_run_per_side_is_compared_exactly():
    rows = pd.DataFrame({"variant": ["baseline", "patched", "baseline", "patched"],
                         "vmas": [21, 21, 421, 421], "forks_per_s": [100.0, 90.0, 50.0, 50.0]})
    exact = improvement_table(rows, deterministic=True).set_index("vmas")
    assert bool(exact.loc[21, "significant"]) and exact.loc[21, "improvement_pct"] < 0
    assert not bool(exact.loc[421, "significant"])
    assert exact.loc[21, "test"].startswith("one -icount run")
    unknown = improvement_table(rows).set_index("vmas")
    assert not bool(unknown.loc[21, "significant"])


def test_costs_are_never_negative():
    """Points no non-negative law explains exactly (fake rates): the fit stays >= 0."""
    w = [{"forks": 1, "iter_vmas": a, "vmas_copied": b} for a, b in ((1, 2), (2, 1), (3, 3))]
    pts = [CalPoint(f"l{i}", 0, r, x) for i, (x, r) in enumerate(zip(w, (100.0, 90.0, 50.0),
                                                                  strict=True))]
    m = calibrate(pts, ("fork", "vma_visit", "vma_copy"))
    assert all(c >= 0 for c in m.coef.values())
