"""The work counts the instruction model (simulator.insn_cost) added to simulator.work and
simulator.maple.core, on tiny maple trees built by the simulator, checked against values
derived by hand from the 6.12 kernel's algorithm (lib/maple_tree.c, kernel/fork.c)."""

from __future__ import annotations

from simulator.fork import dup_mmap
from simulator.maple import MapleTree
from simulator.maple import core as C
from simulator.predict import build_parent
from simulator.scenario import from_dict
from simulator.work import EXIT_PASSES, fork_work, tree_ascents, tree_shape

PAGE = 0x1000


def _tree(n: int, gap: bool) -> MapleTree:
    """n one-page entries from 0x1000 up, with a one-page NULL gap after each (gap) or
    adjacent (not gap)."""
    t = MapleTree(rcu=False)
    step = 2 * PAGE if gap else PAGE
    for i in range(n):
        start = PAGE + i * step
        t.store_range(start, start + PAGE - 1, object())
    return t


def test_ascents_of_a_two_level_tree():
    """Root + leaves: mas_next_node() ascends once from every leaf but the last (whose max
    is ULONG_MAX), and mas_ascend() returns at once when the parent is the root: no loop."""
    t = _tree(20, gap=True)
    shape = tree_shape(t)
    assert t.height == 2 and shape["nodes"] == shape["leaves"] + 1
    assert tree_ascents(t) == {"calls": shape["leaves"] - 1, "loops": 0}


def test_ascents_of_a_three_level_tree():
    """Three levels: every non-root node off the right spine is ascended from once
    (nodes - height); a leaf's parent is not the root, so mas_ascend()'s loop runs once, at
    the root, for each of those leaves (leaves - 1); an internal node's parent is the root."""
    t = _tree(400, gap=True)
    shape = tree_shape(t)
    assert t.height == 3
    assert tree_ascents(t) == {"calls": shape["nodes"] - 3, "loops": shape["leaves"] - 1}


def test_ascents_of_an_empty_or_single_leaf_tree():
    assert tree_ascents(MapleTree(rcu=False)) == {"calls": 0, "loops": 0}
    assert tree_ascents(_tree(3, gap=True)) == {"calls": 0, "loops": 0}  # a root leaf


def test_null_exact_fit_store_walks_pivots_and_rescans_its_leaf():
    """NULL over the 5th of adjacent entries (slot 5 of the first leaf: slot 0 is the NULL
    range below 0x1000): the walk from the root steps past 0 pivots in the root (the first
    leaf's max is above the index) and 5 in the leaf (pivots 0..4 are below 0x5000); the
    exact fit turns a slot NULL, so mas_update_gap() rescans the leaf once:
    mas_leaf_max_gap() starts at slot 2 (slot 0 is a gap), steps over each entry by one and
    over the gap at slot 5 by two, up to the leaf's end - 1: end - 3 steps."""
    t = _tree(40, gap=False)
    assert t.height == 2
    leaf = t.root.slot[0]
    before = C.ops_snapshot()
    t.store_range(5 * PAGE, 6 * PAGE - 1, None)
    ops = C.ops_since(before)
    assert ops["st_exact_fit"] == 1
    assert ops["walk_pivots"] == 5
    assert t.root.slot[0] is leaf and leaf.slot[5] is None
    assert ops["leaf_gap_scans"] == 1
    assert ops["leaf_gap_slots"] == leaf.end - 3


def test_patched_fork_counts_null_stores_and_passes():
    """The patched dup_mmap clears each VM_DONTCOPY VMA with one mas_store_gfp(NULL); the
    baseline skips them. mas_find() is called once per VMA in each of the four passes
    (dup_mmap over the parent's VMAs, exit_mmap's three over the child's)."""
    sc = from_dict({"name": "df", "repeat": 40,
                    "groups": [{"count": 1, "advice": "dontfork"}, {"count": 1}]})
    parent = build_parent(sc, "spawn", None)
    n = sum(1 for _ in parent.vmas())
    for variant, nulls in (("patched", 40), ("baseline", 0)):
        w = fork_work(parent, dup_mmap(parent, variant))
        assert w["null_stores"] == nulls
        assert w["exit_vmas"] == n - 40
        assert w["find_calls"] == n + EXIT_PASSES * (n - 40)


def test_patched_ascents_count_dup_and_all_passes():
    """Patched: dup_mmap's loop and mas_dup_build() (ascending in both trees) walk the
    parent's shape, exit_mmap the child's three times; baseline: the parent's once; plus the
    write path's own mas_ascend() calls."""
    sc = from_dict({"name": "seed", "groups": [{"count": 1, "touch": "all"}]})
    parent = build_parent(sc, "spawn", 1621)
    up = tree_ascents(parent.tree)
    for variant, walks in (("patched", 3), ("baseline", 1)):
        res = dup_mmap(parent, variant)
        child = tree_ascents(res.child_tree)
        w = fork_work(parent, res)
        assert w["ascents"] == (walks * up["calls"] + EXIT_PASSES * child["calls"]
                                + w["write_ascents"])
        assert w["ascend_loops"] == (walks * up["loops"] + EXIT_PASSES * child["loops"]
                                     + w["write_ascend_loops"])
        assert up["calls"] > 0 and up["loops"] > 0
        # the baseline's bulk store splits leaves (mas_push_data's siblings, mast_fill_bnode
        # ascend); the patched kernel copies the tree and makes only exact-fit stores here
        assert (w["write_ascents"] > 0) == (variant == "baseline")


def test_replayed_copy_stores_walk_no_pivots():
    """The patched kernel's copy stores are made by the iterator standing on the slot: the
    counts do not depend on whether the simulator replays them from the root."""
    sc = from_dict({"name": "seed", "groups": [{"count": 1, "touch": "all"}]})
    parent = build_parent(sc, "spawn", 421)
    ran = fork_work(parent, dup_mmap(parent, "patched", replace_entries=True))
    skipped = fork_work(parent, dup_mmap(parent, "patched", replace_entries=False))
    assert ran["walk_pivots"] == skipped["walk_pivots"]
    assert ran["leaf_gap_scans"] == skipped["leaf_gap_scans"]


def _dup_build_walk(tree: MapleTree) -> dict[str, int]:
    """mas_dup_build()'s walk over one tree, driven through the simulator's port of the
    kernel's mas_ascend() / mas_descend(): from the leftmost leaf, until the leaf whose max
    is ULONG_MAX, ascend while the slot is the node's last, then step to the next slot and
    descend to its leftmost leaf. Returns the mas_ascend() calls and loop iterations it made."""
    mas = C.MaState(tree)
    mas.node, mas.min, mas.max, mas.offset = tree.root, 0, C.M, 0
    before = C.ops_snapshot()
    while not mas.node.leaf:
        mas.offset = 0
        C.mas_descend(mas)
    while mas.max != C.M:
        while True:
            C.mas_ascend(mas)
            if mas.offset != C.mas_data_end(mas):
                break
        mas.offset += 1
        C.mas_descend(mas)
        while not mas.node.leaf:
            mas.offset = 0
            C.mas_descend(mas)
    ops = C.ops_since(before)
    return {"calls": ops["write_ascents"], "loops": ops["write_ascend_loops"]}


def test_ascents_match_the_kernels_mas_ascend_on_a_four_level_tree():
    """tree_ascents() (a walk over the simulated tree) against the simulator's port of
    mas_ascend() driven as mas_dup_build() drives it, on a tree tall enough (4 levels) for
    mas_ascend()'s loop to go past the grandparent."""
    t = _tree(1500, gap=True)
    assert t.height == 4
    got = tree_ascents(t)
    assert got == _dup_build_walk(t)
    assert got["loops"] > tree_shape(t)["leaves"] - 1  # some leaves loop twice
