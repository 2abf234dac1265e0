"""Counts on a kernel whose SLUB_STATS miss bulk objects (kernel fact slub_bulk_stats false,
6.1: kmem_cache_alloc_bulk() counts only what ___slab_alloc() returns). Hand-made records
shaped like forkcount's and faultsweep's (fakes: no guest here); predictions from the real
simulator with 6.1's facts. Without help a count that includes bulk-allocated maple nodes is
bounded (skipped inside the bound, mismatch outside) and every other cache is compared
exactly; when the records say the guest had maple_node as a debug cache (slab_debug, what
orchestrator/run/slubdebug.py boots 6.1's faults/counts guests with) and the tree's debug slow
path hands out single objects (fact slub_debug_single), every count is exact."""

from __future__ import annotations

from orchestrator.analysis.compare import ObservedJob, leak_rows
from orchestrator.analysis.rules import compare_counts
from orchestrator.suite_defs.base import SCENARIO_DIR
from simulator import predict
from simulator.fork import KernelConfig
from simulator.scenario import load

FACTS_61 = {"version": "6.1.176", "dup_mmap_model": "baseline", "fork_failure": "copies",
            "vma_lock": "none", "maple_alloc": "ondemand", "vdso_vclock": False,
            "slub_bulk_stats": False, "slub_debug_single": True}
DEBUG_MAPLE = {"boot_param": "slub_debug=F,maple_node", "debug_caches": ["maple_node"]}
KC = {"sha256": "0" * 64, "options": {"CONFIG_PER_VMA_LOCK": "n"}}
CONFIG_61 = KernelConfig(per_vma_lock=False, maple_alloc="ondemand")
SC = load(SCENARIO_DIR / "anon-touched-21.yaml")


def _job(suite, program, records, facts=FACTS_61, slab_debug=None):
    for r in records:
        r.update(kernel_facts=facts, kernel_config=KC, slab_debug=slab_debug)
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


def _count_verdicts(observed, exact, preds, facts=FACTS_61, slab_debug=DEBUG_MAPLE):
    rows = {r["measurement"]: r for r in compare_counts(
        _job("counts", "forkcount", [_summary(observed, exact)], facts, slab_debug), "baseline", preds)}
    return rows


def test_maple_node_count_is_exact_on_a_debug_maple_node():
    preds = _counts_preds()
    p = preds[0]
    total, bulk = p["maple_node_allocated"], p["allocated_in_bulk"]["maple_node"]
    exact = {c: p["objects"][c] for c in ("vm_area_struct", "anon_vma", "anon_vma_chain")}
    for observed, verdict in ((total, "match"), (total - bulk, "mismatch"), (total - 1, "mismatch"),
                              (total + 1, "mismatch")):
        rows = _count_verdicts(observed, exact, preds)
        row = rows["maple_node_allocated_per_fork"]
        assert (row["verdict"], row["predicted"]) == (verdict, str(total))
        assert "debug cache" in row["rule"]
        assert all(rows[f"{c}_allocated_per_fork"]["verdict"] == "match" for c in exact)
        assert "debug cache" not in rows["vm_area_struct_allocated_per_fork"]["rule"]
    # bounded again when the records do not show a debug maple_node, or the tree's debug slow
    # path is not known to give single objects
    for facts, slab_debug in ((FACTS_61, None), (FACTS_61, {"boot_param": "", "debug_caches": []}),
                              (FACTS_61, {"boot_param": "", "debug_caches": ["vm_area_struct"]}),
                              (FACTS_61 | {"slub_debug_single": False}, DEBUG_MAPLE),
                              ({k: v for k, v in FACTS_61.items() if k != "slub_debug_single"}, DEBUG_MAPLE)):
        row = _count_verdicts(total - bulk, exact, preds, facts, slab_debug)["maple_node_allocated_per_fork"]
        assert row["verdict"] == "skipped", (facts, slab_debug)


def test_failed_fork_allocs_are_exact_in_every_cache_on_a_debug_maple_node():
    preds = predict.records(SC, "baseline", program="faultsweep", config=CONFIG_61,
                            measurements=("fault_outcome",))
    p = next(x for x in preds if x.get("fork") == "ENOMEM" and x.get("site") == "anon_vma_fork")
    assert p["allocated_in_bulk"]["maple_node"] > 0

    def verdicts(alloc):
        rec = {"measurement": "fault", "values": {"k": p["k"], "fork_result": -12, "alloc": dict(alloc),
                                                 "net": dict.fromkeys(alloc, 0), "settled": True}}
        rows = leak_rows(_job("faults", "faultsweep", [rec], slab_debug=DEBUG_MAPLE), "baseline", rec, p)
        return {(r["measurement"], r["key"]): r for r in rows}

    by = verdicts(p["allocated"])
    assert ("failed_fork_allocs", f"k={p['k']} maple_node") not in by  # no bounded row
    row = by[("failed_fork_allocs", f"k={p['k']}")]
    assert row["verdict"] == "match" and f"maple_node +{p['allocated']['maple_node']}" in row["predicted"]
    short = dict(p["allocated"]) | {"maple_node": p["allocated"]["maple_node"] - 1}
    assert verdicts(short)[("failed_fork_allocs", f"k={p['k']}")]["verdict"] == "mismatch"
