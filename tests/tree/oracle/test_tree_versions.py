"""The maple tree oracle on each kernel tree forkdiff knows (6.1, 6.12, 7.2): it builds from
that tree's own userspace harness, whatever its layout, and `forkdiff oracle check` compares
the Python port with it under the allocation rules and write path the tree's facts select. On
6.1 the simulator's 6.1 pieces are checked against the tree's own lib/maple_tree.c: the
on-demand allocation rules, and the trees a 6.1 fork builds; on 7.2 its maple_copy write path
and the trees a 7.2 fork builds. Real parts only: every comparison runs
the tree's compiled maple_tree.c; the trees are the ones fetched into the cache (small
operation lists, so each tree costs seconds once its oracle is built)."""

from __future__ import annotations

import io
import json
import os

import pytest

from orchestrator.prepare.oracle import harness_of, run_oracle_text
from orchestrator.prepare.oracle_check import check, compare_list, missing_ops
from orchestrator.prepare.tree import resolve_tree
from orchestrator.prepare.treefacts import detect
from simulator.fork import KernelConfig, dup_mmap
from simulator.maple import MapleTree
from simulator.maple.gen import random_lists
from simulator.maple.ops import format_ops
from simulator.mm import PAGE_SIZE, PROT_READ
from simulator.predict import build_parent
from simulator.scenario import from_dict

# The trees, as `forkdiff --tree` takes them (FORKDIFF_TEST_TREE_<version> overrides, e.g. a
# local checkout); None is the default tree (Debian's linux-source-6.12).
TREES = {
    "6.1": os.environ.get("FORKDIFF_TEST_TREE_6_1", "debian:bookworm:linux-source-6.1"),
    "6.12": os.environ.get("FORKDIFF_TEST_TREE_6_12") or None,
    "7.2": os.environ.get("FORKDIFF_TEST_TREE_7_2", "debian:sid:linux-source-7.2"),
}
CONFIG_61 = KernelConfig(per_vma_lock=False, maple_alloc="ondemand")
CONFIG_72 = KernelConfig(maple_alloc="sheaves", maple_write="maple_copy", slab_sheaves=True,
                         vma_lock="embedded", fork_failure="teardown")


@pytest.fixture(scope="module", params=sorted(TREES))
def any_tree(request):
    tree = resolve_tree(TREES[request.param])
    return request.param, tree, detect(tree.path)


@pytest.fixture(scope="module")
def tree72():
    tree = resolve_tree(TREES["7.2"])
    return tree, detect(tree.path)


@pytest.fixture(scope="module")
def tree61():
    tree = resolve_tree(TREES["6.1"])
    return tree, detect(tree.path)


def test_oracle_check_passes_on_every_tree(any_tree):
    """6.1, 6.12 and 7.2: the port models each tree's maple rules (maple_model: no problem
    named), and every list agrees with the tree's own lib/maple_tree.c (exit 0)."""
    from simulator.runconfig import maple_model

    version, tree, facts = any_tree
    out = io.StringIO()
    rc = check(tree, facts, seed=11, count=12, out=out)
    text = out.getvalue()
    alloc, write, problems = maple_model(facts)
    assert problems == [], text
    assert (alloc, write) == {"6.1": ("ondemand", "big_node"), "6.12": ("prealloc", "big_node"),
                              "7.2": ("sheaves", "maple_copy")}[version]
    ran = [line for line in text.splitlines() if line.startswith("  ") and "skipped" not in line]
    assert len(ran) >= 12, text
    assert rc == 0, text
    assert "DIFFERS" not in text and "NOT MODELLED" not in text and "matches this tree" in text


def test_harness_layout_and_features_come_from_the_files(any_tree):
    """6.1 keeps its harness in tools/testing/radix-tree and has no __mt_dup (added in 6.8);
    6.12 and 7.2 use tools/testing/shared; 7.2 dropped mas_expected_entries."""
    version, tree, _facts = any_tree
    h = harness_of(tree.path)
    shared = (tree.path / "tools/testing/shared/linux.c").is_file()
    assert h.layout == ("shared" if shared else "radix-tree")
    maple = (tree.path / "lib/maple_tree.c").read_text(errors="replace")
    assert ("FD_HAVE_MT_DUP" in h.features) == ("\nint __mt_dup(" in maple)
    assert ("FD_HAVE_EXPECTED_ENTRIES" in h.features) == ("\nint mas_expected_entries(" in maple)
    if version == "6.1":
        assert h.layout == "radix-tree" and missing_ops(h.features) == {"dup"}


def test_72_needs_its_maple_copy_write_path(tree72):
    """The check can fail: with 6.12's big-node write path (and 7.2's allocation rules) the
    Python tree differs from 7.2's lib/maple_tree.c on mm-shaped lists (a full leaf splits
    8 + 9 in 7.2 where 6.12 makes 10 + 7, so the dumped nodes differ); with the maple_copy
    write path the same lists agree, logs included (the sheaf prefills, "h", and the nodes
    freed)."""
    tree, _ = tree72
    lists = random_lists(7, 20, ("none", "dup"))
    old = [compare_list(f"l{i}", ops, tree, "sheaves", set(), "big_node") for i, ops in enumerate(lists)]
    new = [compare_list(f"l{i}", ops, tree, "sheaves", set(), "maple_copy") for i, ops in enumerate(lists)]
    assert any(r.difference.startswith("output line") and "node" in r.difference for r in old)
    assert [r.difference for r in new] == [""] * len(lists)
    # the logs compared hold 7.x's own records: sheaf prefills ("h") and kfree_rcu'd nodes ("r")
    kinds = {e[1] for ops in lists for d in run_oracle_text(format_ops(ops), tree)
             if "log" in d for e in d["log"]}
    assert {"h", "r", "f", "s"} <= kinds, kinds


def test_72_fork_trees_match_the_kernel(tree72):
    """A 7.2 fork (__mt_dup, then a NULL store over each VM_DONTCOPY VMA): the parent's tree
    after a process history with splits and the child's tree equal what 7.2's lib/maple_tree.c
    builds for the same operations, node for node, and the allocation logs agree."""
    tree, _ = tree72
    mm = _history(CONFIG_72)
    res = dup_mmap(mm, "patched", config=CONFIG_72)
    ops = mm.history_ops() + [("dump",)] + res.tree_ops + [("dump",)]
    parent_dump, child_dump = [d for d in run_oracle_text(format_ops(ops), tree) if "nodes" in d]
    parent_dump.pop("log")
    child_dump.pop("log")
    assert json.loads(json.dumps(mm.tree.dump())) == parent_dump
    assert json.loads(json.dumps(res.child_tree.dump())) == child_dump
    assert compare_list("fork72", ops, tree, "sheaves", set(), "maple_copy").difference == ""


def test_61_oracle_refuses_dup(tree61):
    tree, _ = tree61
    from orchestrator.errors import ForkdiffError

    with pytest.raises(ForkdiffError, match="exited with status 4"):
        run_oracle_text("tree rcu\nstore 4096 8191 1\ndup\n", tree)


def test_61_needs_its_on_demand_rules(tree61):
    """The check can fail: with 6.12's up-front rules the Python tree's allocation log differs
    from 6.1's on the same mm-shaped lists (nodes agree, allocations do not); with the
    on-demand rules the same lists agree."""
    tree, _ = tree61
    lists = random_lists(5, 20, ("none", "bulk"))
    prealloc = [compare_list(f"l{i}", ops, tree, "prealloc", {"dup"}) for i, ops in enumerate(lists)]
    ondemand = [compare_list(f"l{i}", ops, tree, "ondemand", {"dup"}) for i, ops in enumerate(lists)]
    assert any(r.difference.startswith("output line") and "log:" in r.difference for r in prealloc)
    assert [r.difference for r in ondemand] == [""] * len(lists)


def test_61_expected_entries_allocation(tree61):
    """6.1 mas_expected_entries(n): nr = ceil(max(n, 2n+1) / 14) leaves, + ceil(nr / 8)
    internal nodes, + 3, asked with GFP_KERNEL: one single allocation and the rest in bulk
    chunks of at most 30 (mas_alloc_nodes). n = 40: ceil(81/14) = 6, + 1, + 3 = 10 -> 1 + 9;
    n = 300: ceil(601/14) = 43, + 6, + 3 = 52 -> 1 + 30 + 21."""
    tree, _ = tree61
    for n, want in ((40, [["s", 1], ["b", 9]]), (300, [["s", 1], ["b", 30], ["b", 21]])):
        ops = [("tree", "norcu"), ("expect", n), ("dump",)]
        kernel = run_oracle_text(format_ops(ops), tree)[0]["log"]
        t = MapleTree(rcu=False, alloc="ondemand")
        t.expected_entries(n)
        assert [e[1:] for e in kernel] == want
        assert [e[1:] for e in t.log_compact()] == want


def _history(config: KernelConfig):
    sc = from_dict({"name": "hist", "groups": [
        {"count": 40, "pages": 3, "touch": "first"},
        {"count": 10, "advice": "dontfork", "touch": "all"},
        {"count": 10, "kind": "file", "prot": "r"}]})
    mm = build_parent(sc, program="spawn", total=150,
                      tree_factory=lambda: MapleTree(alloc=config.maple_alloc,
                                                     write=config.maple_write))
    lay = sc.layout()
    for lv in lay[:40:4]:  # splits: punch the middle page out, make tails read-only
        mm.munmap(lv.start + PAGE_SIZE, PAGE_SIZE)
    for lv in lay[1:40:4]:
        mm.mprotect(lv.start + 2 * PAGE_SIZE, PAGE_SIZE, PROT_READ)
    mm.check()
    return mm


def test_61_fork_trees_match_the_kernel(tree61):
    """A 6.1 fork (its own dup_mmap(): mas_expected_entries(map_count), one bulk store per
    copied VMA, mas_destroy()): the parent's tree after the process history and the child's
    tree with its allocation log equal what 6.1's lib/maple_tree.c builds for the same
    operations, node for node."""
    tree, _ = tree61
    mm = _history(CONFIG_61)
    res = dup_mmap(mm, "baseline", config=CONFIG_61)
    ops = mm.history_ops() + [("dump",)] + res.tree_ops + [("dump",)]
    parent_dump, child_dump = [d for d in run_oracle_text(format_ops(ops), tree) if "nodes" in d]
    parent_log = parent_dump.pop("log")
    assert json.loads(json.dumps(mm.tree.dump())) == parent_dump
    assert [e[1:] for e in parent_log] == [e[1:] for e in mm.tree.log_compact()]
    child_log = child_dump.pop("log")
    assert json.loads(json.dumps(res.child_tree.dump())) == child_dump
    kinds = {"single": "s", "bulk": "b", "free": "f"}
    sim = [[kinds[r.kind], r.count] for r in res.child_tree.alloc_log
           if r.op in ("expect", "bstore", "bdestroy")]
    assert [[k, n] for _seq, k, n in child_log] == sim
    # the trace fail-nth sees: the preallocation first, no vma_lock on 6.1
    assert res.trace[0].site == "mas_expected_entries"
    assert not [e for e in res.trace if e.cache == "vma_lock"]
