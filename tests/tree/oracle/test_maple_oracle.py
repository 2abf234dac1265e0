"""Differential suite: the Python maple tree (simulator.maple) against the kernel's own
lib/maple_tree.c (built by orchestrator.prepare.oracle), node for node, allocation for allocation.
Real parts only: every comparison runs the compiled kernel code."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from maple_compare import REGRESSIONS, compare

from orchestrator.prepare.oracle import run_oracle_text
from simulator.maple import MapleTree
from simulator.maple.gen import BASE, PAGE, mm_sequence

sizes = st.one_of(st.integers(1, 40), st.integers(40, 400), st.sampled_from([1000, 2000, 3000]))


@settings(max_examples=120, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(n=sizes, order=st.sampled_from(["asc", "desc", "random"]), rcu=st.booleans(),
       seed=st.integers(0, 2**32 - 1), churn=st.sampled_from([0.0, 0.05, 0.3]),
       tail=st.sampled_from(["none", "dup", "bulk", "dupfail"]))
def test_mm_shaped_sequences_match_kernel(n, order, rcu, seed, churn, tail):
    compare(mm_sequence(n, order, rcu, seed, churn, tail), save_as="hypothesis-last-failure.ops")


def test_batched_random_sequences_match_kernel():
    """300 more mixed sequences in one oracle process."""
    rng = random.Random(20241)
    ops: list[tuple] = []
    for _ in range(300):
        ops += mm_sequence(rng.choice([1, 3, 8, 15, 16, 17, 31, 60, 150, 700]),
                           rng.choice(["asc", "desc", "random"]), rng.random() < 0.5,
                           rng.getrandbits(32), rng.choice([0.0, 0.1, 0.4]),
                           rng.choice(["none", "dup", "bulk", "dupfail"]))
    compare(ops, sequences=300)


def _many_vmas(n: int) -> list[tuple[int, int]]:
    """1-page VMAs with 1-page holes, as a process with many VMAs looks."""
    return [(BASE + i * 2 * PAGE, BASE + i * 2 * PAGE + PAGE - 1) for i in range(n)]


def test_51221_appends_then_dup_and_replace_match_kernel():
    ranges = _many_vmas(51221)
    ops: list[tuple] = [("tree", "rcu")] + [("store", a, b, i + 1) for i, (a, b) in enumerate(ranges)]
    ops += [("dump",), ("dup",), ("rcu", "off")]
    ops += [("replace", a, b, i + 7) for i, (a, b) in enumerate(ranges)]
    ops += [("rcu", "on"), ("dump",)]
    compare(ops)


def test_60000_random_insertions_match_kernel():
    ranges = _many_vmas(60000)
    idx = list(range(60000))
    random.Random(7).shuffle(idx)
    compare([("tree", "rcu")] + [("store", *ranges[i], i + 1) for i in idx] + [("dump",)])


def test_51221_bulk_build_matches_kernel():
    ranges = _many_vmas(51221)
    ops: list[tuple] = [("tree", "norcu"), ("expect", 51221)]
    ops += [("bstore", a, b, i + 1) for i, (a, b) in enumerate(ranges)]
    compare(ops + [("bdestroy",), ("dump",)])


@pytest.mark.parametrize("n", [1, 16, 17, 500, 51221])
def test_dup_allocates_one_single_plus_one_bulk_per_internal_node(n):
    """__mt_dup of an append-built tree: objects = nodes of the tree, in 1 single allocation
    and one bulk allocation per internal node; checked against the oracle's own counts."""
    ranges = _many_vmas(n)
    ops = [("tree", "rcu")] + [("store", a, b, i + 1) for i, (a, b) in enumerate(ranges)]
    ops += [("dump",), ("dup",), ("dump",)]
    from simulator.maple.ops import format_ops

    lines = run_oracle_text(format_ops(ops))
    before, dup_result, after = lines
    assert dup_result == {"dup": 0}
    kernel_nodes = len(before["nodes"])
    kernel_internal = sum(1 for nd in before["nodes"] if nd["t"] == "a")
    singles = [e for e in after["log"] if e[1] == "s"]
    bulks = [e for e in after["log"] if e[1] == "b"]
    assert len(singles) == 1 and singles[0][2] == 1
    assert len(bulks) == kernel_internal
    assert 1 + sum(e[2] for e in bulks) == kernel_nodes
    t = MapleTree()
    for i, (a, b) in enumerate(ranges):
        t.store_range(a, b, i + 1)
    t2 = t.dup()
    assert t.node_count == kernel_nodes and t.internal_count == kernel_internal
    assert [e[1:] for e in t2.log_compact()] == [e[1:] for e in after["log"]]
    assert t2.checks() == 1 + kernel_internal


def test_saved_regressions_replay():
    """Every committed operation list (tests/tree/oracle/regressions/*.ops) matches the kernel."""
    from simulator.maple.ops import parse

    files = sorted(REGRESSIONS.glob("*.ops"))
    assert files, f"{REGRESSIONS} holds the committed example set"
    for f in files:
        ops = parse(f.read_text(), str(f))
        assert ops.count(("dump",)) >= 1, f"{f} dumps nothing: it would compare nothing"
        compare(ops)


def test_a_failing_list_is_saved_in_the_cache_not_the_source_tree(tmp_path, monkeypatch):
    """The real oracle's output (run first, on the real cache) against a FAKE Python side that
    prints one wrong line: the list goes to FORKDIFF_CACHE/oracle-failures/, and nothing is
    written into the repository."""
    import maple_compare

    from simulator.maple.ops import format_ops

    repo = Path(__file__).resolve().parents[3]
    ops = [("tree", "rcu"), ("store", BASE, BASE + PAGE - 1, 1), ("dump",)]
    kernel_out = maple_compare.run_oracle_raw(format_ops(ops))
    monkeypatch.setattr(maple_compare, "run_oracle_raw", lambda text: kernel_out)
    real_replay = maple_compare.replay

    def wrong_replay(ops):
        lines, rest = real_replay(ops)
        return ["{}"] + lines[1:], rest

    monkeypatch.setattr(maple_compare, "replay", wrong_replay)
    monkeypatch.setenv("FORKDIFF_CACHE", str(tmp_path / "cache"))
    for key, value in maple_compare.STATS.items():  # the planted mismatch is not counted
        monkeypatch.setitem(maple_compare.STATS, key, value)
    before = set(repo.rglob("*.ops"))
    with pytest.raises(AssertionError) as err:
        compare(ops, save_as="planted.ops")
    saved = tmp_path / "cache" / "oracle-failures" / "planted.ops"
    assert saved.is_file() and str(saved) in str(err.value)
    assert saved.read_text().endswith(format_ops(ops))
    assert set(repo.rglob("*.ops")) == before
