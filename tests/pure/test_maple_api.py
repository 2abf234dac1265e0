"""Unit tests of simulator.maple's own behaviour (no kernel needed; the node layouts are
checked against the kernel in tests/tree/oracle)."""

from __future__ import annotations

import pytest

from simulator.maple import DupFailed, MapleTree

PAGE = 4096


def build(n: int, rcu: bool = True) -> MapleTree:
    t = MapleTree(rcu=rcu)
    for i in range(n):
        t.store_range(0x10000 + 2 * i * PAGE, 0x10000 + 2 * i * PAGE + PAGE - 1, i)
    return t


def test_entries_and_load_follow_stores_splits_and_erases():
    t = build(100)
    t.store_range(0x10000, 0x10000 + PAGE - 1, "x")
    t.erase(0x10000 + 2 * PAGE)
    t.store_range(0x10000 + 4 * PAGE, 0x10000 + 8 * PAGE - 1, None)
    got = t.entries()
    assert got[0] == (0x10000, 0x10000 + PAGE - 1, "x")
    starts = [a for a, _, _ in got]
    assert 0x10000 + 2 * PAGE not in starts and 0x10000 + 4 * PAGE not in starts
    assert 0x10000 + 6 * PAGE not in starts and 0x10000 + 8 * PAGE in starts
    assert len(got) == 100 - 3
    assert t.load(0x10000 + 10 * PAGE + 5) == 5
    assert t.load(0x10000 + 10 * PAGE + PAGE) is None


def test_dup_copies_every_node_and_logs_one_single_plus_bulks():
    t = build(2000)
    t2 = t.dup()
    assert t2.entries() == t.entries()
    assert t2.node_count == t.node_count
    kinds = [r.kind for r in t2.alloc_log]
    assert kinds[0] == "single" and kinds.count("single") == 1
    assert kinds.count("bulk") == t.internal_count
    assert sum(r.count for r in t2.alloc_log) == t.node_count
    assert t2.checks() == 1 + t.internal_count


@pytest.mark.parametrize("k", [1, 2, 5])
def test_failed_dup_frees_what_it_allocated_and_leaves_nothing(k):
    t = build(500)
    with pytest.raises(DupFailed) as info:
        t.dup(fail_at_check=k)
    log = info.value.log
    assert log[k - 1].kind.startswith("fail_")
    allocated = sum(r.count for r in log if r.kind in ("single", "bulk"))
    freed = sum(r.count for r in log if r.kind == "free")
    assert allocated == freed
    assert sum(1 for r in log if r.is_check) == k
    assert t.entries() == build(500).entries()


def test_replace_exact_does_not_allocate_and_refuses_partial_ranges():
    t2 = build(300).dup()
    t2.set_rcu(False)
    before = len(t2.alloc_log)
    t2.replace_exact(0x10000, 0x10000 + PAGE - 1, "child")
    assert t2.alloc_log[before:] == []
    assert t2.load(0x10000) == "child"
    with pytest.raises(ValueError):
        t2.replace_exact(0x10000, 0x10000 + 2 * PAGE - 1, "bad")


def test_bulk_mode_needs_rcu_off_and_preallocates():
    t = MapleTree(rcu=True)
    with pytest.raises(ValueError):
        t.expected_entries(10)
    t = MapleTree(rcu=False)
    t.expected_entries(100)
    # T = L + ceil(L/8) + 3 with L = ceil((2N+1)/14) (mas_expected_entries() in
    # lib/maple_tree.c): 15 + 2 + 3 = 20
    assert [(r.kind, r.count) for r in t.alloc_log] == [("single", 1), ("bulk", 19)]
    for i in range(100):
        t.bulk_store(0x10000 + 2 * i * PAGE, 0x10000 + 2 * i * PAGE + PAGE - 1, i)
    t.destroy_bulk()
    assert len(t.entries()) == 100
    freed = sum(r.count for r in t.alloc_log if r.kind == "free")
    assert freed == 20 - t.node_count
