"""Counts on a kernel whose SLUB_STATS miss bulk objects (kernel fact slub_bulk_stats false,
6.1: kmem_cache_alloc_bulk() counts only what ___slab_alloc() returns). Hand-made records
shaped like forkcount's and faultsweep's (fakes: no guest here); predictions from the real
simulator with 6.1's facts. A count that includes bulk-allocated maple nodes is bounded
(skipped inside the bound, mismatch outside); every other cache is compared exactly."""

from __future__ import annotations

from orchestrator.analysis.compare import ObservedJob, leak_rows
from orchestrator.analysis.rules import compare_counts
from orchestrator.run.suites import SCENARIO_DIR
from simulator import predict
from simulator.fork import KernelConfig
from simulator.scenario import load

FACTS_61 = {"version": "6.1.176", "dup_mmap_model": "baseline", "fork_failure": "copies",
            "vma_lock": "none", "maple_alloc": "ondemand", "vdso_vclock": False,
            "slub_bulk_stats": False}
KC = {"sha256": "0" * 64, "options": {"CONFIG_PER_VMA_LOCK": "n"}}
CONFIG_61 = KernelConfig(per_vma_lock=False, maple_alloc="ondemand")
SC = load(SCENARIO_DIR / "anon-touched-21.yaml")


def _job(suite, program, records, facts=FACTS_61):
    for r in records:
        r.update(kernel_facts=facts, kernel_config=KC)
    return ObservedJob(suite, "baseline", "faults", {"name": "anon-touched-21"}, program, program, records)


def _counts_preds():
    return predict.records(SC, "baseline", program="forkcount", config=CONFIG_61,
                           measurements=("counts",))


def _summary(maple: int, counts: dict) -> dict:
    median = {c: {"alloc": n, "free": n} for c, n in counts.items()} | {"maple_node": {"alloc": maple, "free": 0}}
    return {"measurement": "summary", "values": {"median": median}}


def test_maple_node_count_is_bounded_and_the_rest_exact():
    preds = _counts_preds()
    p = preds[0]
    total, bulk = p["maple_node_allocated"], p["allocated_in_bulk"]["maple_node"]
    assert 0 < bulk < total  # mas_expected_entries: one single + bulk chunks
    exact = {c: p["objects"][c] for c in ("vm_area_struct", "anon_vma", "anon_vma_chain")}
    for observed, verdict in ((total - bulk, "skipped"), (total, "skipped"),
                              (total - bulk - 1, "mismatch"), (total + 1, "mismatch")):
        rows = {r["measurement"]: r for r in compare_counts(
            _job("counts", "forkcount", [_summary(observed, exact)]), "baseline", preds)}
        assert rows["maple_node_allocated_per_fork"]["verdict"] == verdict
        assert all(rows[f"{c}_allocated_per_fork"]["verdict"] == "match" for c in exact)
    # the same records on a kernel that counts bulk objects: exact again
    rows = {r["measurement"]: r for r in compare_counts(
        _job("counts", "forkcount", [_summary(total - bulk, exact)], FACTS_61 | {"slub_bulk_stats": True}),
        "baseline", preds)}
    assert rows["maple_node_allocated_per_fork"]["verdict"] == "mismatch"


def test_failed_fork_allocs_bound_only_the_bulk_cache():
    preds = predict.records(SC, "baseline", program="faultsweep", config=CONFIG_61,
                            measurements=("fault_outcome",))
    p = next(x for x in preds if x.get("fork") == "ENOMEM" and x.get("site") == "anon_vma_fork")
    bulk = p["allocated_in_bulk"]["maple_node"]
    alloc = dict(p["allocated"]) | {"maple_node": p["allocated"]["maple_node"] - bulk + 2}
    rec = {"measurement": "fault", "values": {"k": p["k"], "fork_result": -12, "alloc": alloc,
                                             "net": dict.fromkeys(alloc, 0), "settled": True}}
    rows = leak_rows(_job("faults", "faultsweep", [rec]), "baseline", rec, p)
    by = {(r["measurement"], r["key"]): r["verdict"] for r in rows}
    assert by[("failed_fork_allocs", f"k={p['k']} maple_node")] == "skipped"
    assert by[("failed_fork_allocs", f"k={p['k']}")] == "match"
    alloc["vm_area_struct"] += 1  # an exact cache off by one is still a mismatch
    rows = leak_rows(_job("faults", "faultsweep", [rec]), "baseline", rec, p)
    assert {(r["measurement"], r["key"]): r["verdict"] for r in rows}[("failed_fork_allocs", f"k={p['k']}")] == "mismatch"
