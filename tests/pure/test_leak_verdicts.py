"""Leak verdicts (orchestrator.analysis.compare.leak_rows, sweep_leak) and the report's leak table, on
hand-made fault records shaped like faultsweep's (fakes: no guest here; the real thing runs in
tests/vm/test_failure_path.py and tests/vm/test_suites.py). The predictions come from the real
simulator for a real scenario."""

from __future__ import annotations

from orchestrator.analysis import report
from orchestrator.analysis.compare import ObservedJob, compare_faults, leak_rows
from orchestrator.results.verdicts import frame
from orchestrator.run.suites import SCENARIO_DIR
from simulator import predict
from simulator.scenario import load

CACHES = ("maple_node", "vm_area_struct", "vma_lock", "anon_vma", "anon_vma_chain")


def preds(variant: str = "patched") -> list[dict]:
    sc = load(SCENARIO_DIR / "anon-touched-21.yaml")
    return predict.records(sc, variant, program="faultsweep", measurements=("counts", "fault_outcome"))


def fault(k: int, fork_result: int, alloc: dict, net: dict, settled: bool = True) -> dict:
    return {"measurement": "fault", "repeat": k, "value": fork_result,
            "values": {"k": k, "fork_result": fork_result, "errno": 12 if fork_result < 0 else 0,
                       "injected": True, "maps_unchanged": True,
                       "alloc": {c: alloc.get(c, 0) for c in CACHES},
                       "net": {c: net.get(c, 0) for c in CACHES}, "settled": settled,
                       "settle_ms": 0.2 if settled else 500.0}}


def job(records: list[dict]) -> ObservedJob:
    return ObservedJob("faults", "patched", "faults", {"name": "anon-touched-21"}, "faultsweep",
               "faultsweep", records)


def first_failing(ps: list[dict], site: str, cache: str) -> dict:
    return next(p for p in ps if p["measurement"] == "fault_outcome" and p.get("fork") == "ENOMEM"
                and p.get("site") == site and p.get("cache") == cache)


def test_a_clean_failed_fork_matches_and_a_leak_names_cache_count_k_and_site():
    ps = preds()
    p = first_failing(ps, "anon_vma_fork", "anon_vma_chain")
    alloc = p["allocated"]
    clean = leak_rows(job([]), "patched", fault(p["k"], -1, alloc, {}), p)
    assert [r["verdict"] for r in clean] == ["match", "match"]
    assert [r["measurement"] for r in clean] == ["failed_fork_allocs", "leak_after_fork"]

    leaky = leak_rows(job([]), "patched", fault(p["k"], -1, alloc, {"anon_vma": 1}, settled=False), p)
    allocs, leak = leaky
    assert allocs["verdict"] == "match"
    assert leak["verdict"] == "mismatch" and leak["observed"] == "anon_vma +1" and leak["predicted"] == "0"
    for text in (f"k={p['k']}", "1 anon_vma", "anon_vma_fork (anon_vma_chain", "XA_ZERO_ENTRY",
                 "still there after 500 ms"):
        assert text in leak["detail"], text


def test_allocations_other_than_the_trace_are_a_mismatch_naming_the_cache():
    ps = preds()
    p = first_failing(ps, "vm_area_dup", "vm_area_struct")
    wrong = dict(p["allocated"], maple_node=p["allocated"]["maple_node"] + 2)
    allocs, leak = leak_rows(job([]), "patched", fault(p["k"], -1, wrong, {}), p)
    assert allocs["verdict"] == "mismatch" and leak["verdict"] == "match"
    assert f"maple_node: observed {wrong['maple_node']}, predicted {p['allocated']['maple_node']}" in allocs["detail"]


def test_late_frees_are_not_leaks_and_absorbed_forks_are_checked_too():
    ps = preds()
    absorbed = next(p for p in ps if p["measurement"] == "fault_outcome" and p.get("absorbed"))
    rows = leak_rows(job([]), "patched", fault(absorbed["k"], 1, absorbed["allocated"],
                                               {"maple_node": -3}), absorbed)
    assert [r["measurement"] for r in rows] == ["leak_after_fork"]  # no alloc rule for absorbed
    assert rows[0]["verdict"] == "match" and "freed during this one" in rows[0]["detail"]
    rows = leak_rows(job([]), "patched", fault(absorbed["k"], 1, {}, {"vm_area_struct": 1}), absorbed)
    assert rows[0]["verdict"] == "mismatch" and "absorbed fork" in rows[0]["detail"]


def test_records_without_leak_data_give_no_leak_rows():
    ps = preds()
    p = first_failing(ps, "vm_area_dup", "vm_area_struct")
    old = fault(p["k"], -1, {}, {})
    for key in ("alloc", "net", "settled", "settle_ms"):
        del old["values"][key]
    assert leak_rows(job([]), "patched", old, p) == []


def test_sweep_leak_and_the_report_leak_table():
    ps = preds()
    p = first_failing(ps, "anon_vma_fork", "anon_vma_chain")
    recs = [fault(p["k"], -1, p["allocated"], {"anon_vma": 1}),
            {"measurement": "sweep_end", "repeat": None, "value": p["k"],
             "values": {"complete": True, "failed_forks": 1, "absorbed_faults": 0,
                        "net": {c: (1 if c == "anon_vma" else 0) for c in CACHES}, "settled": True}}]
    rows = compare_faults(job(recs), "patched", ps)
    sweep = [r for r in rows if r["measurement"] == "sweep_leak"]
    assert len(sweep) == 1 and sweep[0]["verdict"] == "mismatch" and sweep[0]["observed"] == "anon_vma +1"
    df = frame(rows)
    table = report.leak_table(df)
    assert table == [{"variant": "patched", "model": "patched", "scenario": "anon-touched-21",
                      "cache": "anon_vma", "leaking_forks": 1, "objects": 1, "first_k": f"k={p['k']}",
                      "sweep_net": "+1", "observers": ""}]  # no OBSERVERS= run
    strips = report.fault_strips(df)
    assert len(strips) == 1 and len(strips[0]["cells"]) == 1
    assert strips[0]["leaks"] == 1 and strips[0]["cells"][0]["leak"] == "anon_vma +1"


def test_a_node_pending_in_kfree_rcu_batches_is_predicted_not_a_leak():
    """7.x: when the rcu_free sheaf's kmalloc fails (absorbed), the model predicts the maple
    node pending in kfree_rcu's batches (fork.outcome: pending). The per-k row then expects
    exactly that node in use after the leak wait (the batches drain 5 s after the kfree_rcu,
    KFREE_DRAIN_JIFFIES; the wait is 500 ms): one more or one fewer is a mismatch. A sweep end
    that waited longer than the drain plus a grace period (settle_bound_ms, recorded by the
    guest) has seen it freed: exact 0. Older records, whose sweep end waited less: bounded
    0..pending (`skipped`), beyond it a mismatch."""
    ps = preds()
    absorbed = dict(next(p for p in ps if p["measurement"] == "fault_outcome" and p.get("absorbed")))
    absorbed.update(site="kfree_rcu_sheaf", pending={"maple_node": 1}, pending_ms=5000,
                    pending_until="kfree_rcu batch drain (KFREE_DRAIN_JIFFIES = 5 s)")
    k = absorbed["k"]
    row = leak_rows(job([]), "patched", fault(k, 1, {}, {"maple_node": 1}, settled=False), absorbed)[0]
    assert row["verdict"] == "match" and row["predicted"] == "maple_node +1"
    assert "predicted pending" in row["detail"]
    for net in ({}, {"maple_node": 2}, {"maple_node": 1, "anon_vma": 1}):
        row = leak_rows(job([]), "patched", fault(k, 1, {}, net), absorbed)[0]
        assert row["verdict"] == "mismatch", net
    ps2 = [absorbed if p is not None and p.get("k") == k and p["measurement"] == "fault_outcome"
           else p for p in ps]

    def sweep(net, **bound):
        end = {"measurement": "sweep_end", "repeat": None, "value": k,
               "values": {"complete": True, "last_k": k, "failed_forks": 0, "absorbed_faults": 1,
                          "net": {c: net.get(c, 0) for c in CACHES}, "settled": False, **bound}}
        rows = compare_faults(job([end]), "patched", ps2)
        return next(r for r in rows if r["measurement"] == "sweep_leak")

    assert sweep({"maple_node": 1})["verdict"] == "skipped"
    assert sweep({})["verdict"] == "skipped"
    assert sweep({"maple_node": 2})["verdict"] == "mismatch"
    assert sweep({"anon_vma": 1})["verdict"] == "mismatch"
    # the guest's sweep end waited 7 s (5 s drain + 2 s): the node must be gone, exactly
    drained = sweep({}, settle_bound_ms=7000)
    assert drained["verdict"] == "match" and drained["predicted"] == "0"
    assert "KFREE_DRAIN_JIFFIES" in drained["rule"]
    assert sweep({"maple_node": 1}, settle_bound_ms=7000)["verdict"] == "mismatch"
    # a wait that does not cover drain + grace margin (5.5 s < 5 s + 1 s) stays bounded
    assert sweep({"maple_node": 1}, settle_bound_ms=5500)["verdict"] == "skipped"
    # without a pending prediction the sweep row stays exact
    assert compare_faults(job([{"measurement": "sweep_end", "repeat": None, "value": k,
                                "values": {"complete": True, "last_k": k, "failed_forks": 0,
                                           "absorbed_faults": 1,
                                           "net": {c: 0 for c in CACHES}, "settled": True}}]),
                          "patched", ps)[-1]["verdict"] == "match"
