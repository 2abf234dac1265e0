"""Cross-check: the simulator's maple trees after replaying a process history (exec image,
a scenario's layout, munmap/mprotect splits) and after each variant's dup_mmap() equal the
trees the kernel's own lib/maple_tree.c builds for the same operation list (the oracle,
orchestrator/prepare/oracle.py), node for node, with the same allocation log."""

from __future__ import annotations

import json

import pytest

from simulator.fork import dup_mmap
from simulator.maple.ops import format_ops
from simulator.mm import PAGE_SIZE, PROT_READ
from simulator.predict import build_parent
from simulator.scenario import from_dict


def _history():
    sc = from_dict({"name": "hist", "groups": [
        {"count": 40, "pages": 3, "touch": "first"},
        {"count": 10, "advice": "dontfork", "touch": "all"},
        {"count": 10, "kind": "file", "prot": "r"}]})
    mm = build_parent(sc, program="spawn", total=150)
    lay = sc.layout()
    for lv in lay[:40:4]:  # punch the middle page out of some 3-page VMAs: splits
        mm.munmap(lv.start + PAGE_SIZE, PAGE_SIZE)
    for lv in lay[1:40:4]:  # and make others read-only at their tail: splits
        mm.mprotect(lv.start + 2 * PAGE_SIZE, PAGE_SIZE, PROT_READ)
    mm.check()
    return mm


@pytest.mark.parametrize("variant", ["patched", "baseline"])
def test_process_history_and_fork_trees_match_oracle(variant):
    from orchestrator.prepare.oracle import run_oracle_text

    mm = _history()
    res = dup_mmap(mm, variant, replace_entries=True)
    ops = mm.history_ops() + [("dump",)] + res.tree_ops + [("dump",)]
    oracle = run_oracle_text(format_ops(ops))
    dumps = [d for d in oracle if "nodes" in d]
    assert len(dumps) == 2
    parent_dump, child_dump = dumps
    log = parent_dump.pop("log")
    assert json.loads(json.dumps(mm.tree.dump())) == parent_dump
    assert log  # the history allocated nodes in the kernel too
    child_log = child_dump.pop("log")
    assert json.loads(json.dumps(res.child_tree.dump())) == child_dump
    kinds = {"single": "s", "bulk": "b", "free": "f"}
    sim_log = [[kinds[r.kind], r.count] for r in res.child_tree.alloc_log
               if r.op in ("dup", "store", "expect", "bstore", "bdestroy")]
    assert [[k, n] for _seq, k, n in child_log] == sim_log
