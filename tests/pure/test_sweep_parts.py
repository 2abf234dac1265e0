"""Split fault sweeps (orchestrator/run/sweep_parts.py): the split of a sweep job into k-ranges,
and the join of the parts' records into one sweep's, on hand-written records (fakes: no VM;
the real split sweep is in tests/vm/test_sharded_run.py)."""

from __future__ import annotations

from orchestrator.results.observations import record_key
from orchestrator.run.suites import Job
from orchestrator.run.sweep_parts import join, split

SC = {"name": "mixed-small"}
SWEEP = Job("mixed-small", SC, "faultsweep", ("--kmsg", "--max-k", "20000", "8x1:rw:anon:none:all"), 600.0)


def test_split_into_ranges_with_an_open_end() -> None:
    parts = split(SWEEP, 40, 3)
    assert [p.repeat for p in parts] == ["k1-47", "k48-94", "k95-"]
    assert parts[0].args[:2] == ("--k-from", "1") and "47" in parts[0].args
    assert parts[2].args[:2] == ("--k-from", "95") and "20000" in parts[2].args  # the run's bound
    assert split(SWEEP, 40, 1) == [SWEEP]
    count_only = Job("big", {"name": "big"}, "faultsweep", ("--count-only", "1000x1:rw:anon:none:all"), 300.0)
    assert split(count_only, 1000, 4) == [count_only]


def _rec(measurement: str, repeat, values: dict, value=None) -> dict:
    return {"key": record_key("faults", "patched", "faults", "mixed-small", measurement, repeat),
            "suite": "faults", "variant": "patched", "profile": "faults", "scenario": SC,
            "measurement": measurement, "repeat": repeat, "value": value, "values": values}


def _fault(k: int, result: int) -> dict:
    return _rec("fault", k, {"k": k, "fork_result": result, "net": {"vm_area_struct": 0}}, result)


def _end(part: str, k_from: int, last_k: int, complete: bool, failed: int, absorbed: int, net: int) -> dict:
    v = {"complete": complete, "last_k": last_k, "checks": 5, "failed_forks": failed,
         "absorbed_faults": absorbed, "maps_changed": 0, "maps_unchanged_at_end": True,
         "net": {"vm_area_struct": net, "maple_node": 0}, "settled": True, "settle_ms": 3.0}
    if k_from > 1:
        v["k_from"] = k_from
    return _rec("sweep_end", part, v, last_k)


def test_join_gives_the_records_of_one_whole_sweep() -> None:
    records = [
        _rec("check_count", "k1-3", {"checks": 5, "net": {}}, 5), _fault(1, -1), _fault(2, 1), _fault(3, -1),
        _end("k1-3", 1, 3, False, 2, 1, 0),
        _rec("check_count", "k4-6", {"checks": 5, "net": {}}, 5), _fault(4, -1), _fault(5, -1),
        _rec("not_reached", "k4-6", {"k": 6, "remaining": 1}, 6), _end("k4-6", 4, 5, True, 2, 0, 1),
        _rec("check_count", "k7-", {"checks": 5, "net": {}}, 5),
        _rec("not_reached", "k7-", {"k": 7, "remaining": 1}, 7), _end("k7-", 7, 6, True, 0, 0, 0),
    ]
    out = join(records)
    by = {r["key"]: r for r in out}
    base = "faults|patched|faults|mixed-small"
    assert sorted(by) == sorted([f"{base}|fault|{k}" for k in range(1, 6)]
                                + [f"{base}|check_count", f"{base}|not_reached", f"{base}|sweep_end"])
    assert by[f"{base}|not_reached"]["values"]["k"] == 6
    end = by[f"{base}|sweep_end"]["values"]
    assert (end["complete"], end["last_k"], end["failed_forks"], end["absorbed_faults"]) == (True, 5, 4, 1)
    assert end["net"] == {"vm_area_struct": 1, "maple_node": 0} and "k_from" not in end
    assert by[f"{base}|sweep_end"]["value"] == 5 and by[f"{base}|sweep_end"]["repeat"] is None


def test_join_leaves_unsplit_records_alone() -> None:
    records = [_rec("check_count", None, {"checks": 5}, 5), _fault(1, -1),
               _rec("not_reached", None, {"k": 2}, 2), _end(None, 1, 1, True, 1, 0, 0)]
    assert join(records) == records
