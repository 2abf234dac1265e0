"""The job list and its shards (orchestrator/run/shards.py), on the default vm-test options: no VM,
the planner only."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.conduct.jobs import run_units
from orchestrator.conduct.options import Progress, VmTestOptions
from orchestrator.errors import ForkdiffError
from orchestrator.run import shards


def _units(**kw):
    return run_units(VmTestOptions(out=Path("/nonexistent"), **kw), ["baseline", "patched"], None,
                     Progress(), lambda: False)


def test_job_list_is_deterministic_and_named_uniquely() -> None:
    a, b = _units(), _units()
    assert [u.name for u in a] == [u.name for u in b]
    assert shards.plan_digest(a) == shards.plan_digest(b)
    assert len({u.name for u in a}) == len(a)
    # options change the plan: another DURATION is another run
    assert shards.plan_digest(_units(duration=1.0)) != shards.plan_digest(a)


@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_shards_partition_the_jobs_and_balance_them(n: int) -> None:
    units = _units()
    bins = shards.assign(units, n)
    names = [u.name for b in bins for u in b]
    assert sorted(names) == sorted(u.name for u in units)
    costs = [shards.shard_cost(b) for b in bins]
    biggest = max(u.cost for u in units) + shards.BOOT_SECONDS * 2
    # greedy largest-first: no bin exceeds the smallest by more than one job and a boot or two
    assert max(costs) - min(costs) <= biggest, costs
    for b in bins:  # each bin keeps run order
        order = [units.index(u) for u in b]
        assert order == sorted(order)


def test_largest_jobs_go_to_different_shards() -> None:
    units = _units()
    bins = shards.assign(units, 2)
    top = sorted(units, key=lambda u: -u.cost)[:2]
    where = [next(i for i, b in enumerate(bins) if u in b) for u in top]
    assert where[0] != where[1]


def test_estimate_grows_with_the_sweep() -> None:
    units = {u.name: u.cost for u in _units()}
    assert units["faults|baseline|faults|anon-touched-421"] > units["faults|baseline|faults|anon-touched-21"]
    assert units["spawn|patched|faults|total-51221#0"] > units["spawn|patched|faults|total-21#0"]


@pytest.mark.parametrize("text", ["0/2", "3/2", "1", "a/b", "", "1/0"])
def test_bad_shard_is_a_clear_error(text: str) -> None:
    with pytest.raises(ForkdiffError, match="i/n"):
        shards.parse_shard(text)


def test_shard_and_executor_parse() -> None:
    assert shards.parse_shard(" 2 / 4 ") == (2, 4)
    assert shards.parse_executor("dask:tcp://10.0.0.1:8786") == "dask:tcp://10.0.0.1:8786"
    with pytest.raises(ForkdiffError, match="executor"):
        shards.parse_executor("ray")
