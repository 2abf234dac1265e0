"""6.1 end to end (Debian bookworm's linux-source-6.1): `forkdiff vm-test` on the tree's own
kernel (the baseline variant: its own dup_mmap()) compared exactly with the 6.1 model, the
maple_node counts included. 6.1's SLUB_STATS miss the objects kmem_cache_alloc_bulk() takes
from the CPU free list, so the faults and counts guests boot with maple_node as a debug cache
(orchestrator/run/slubdebug.py), which gives it no CPU free list: every maple node is counted,
and no comparison is bounded.

Real parts only: the 6.1 faults kernel is built, booted in QEMU, fail-nth injects the
failures, the guest reads the slab counters. The tree is FORKDIFF_TEST_TREE_6_1 (a path), else
`debian:bookworm:linux-source-6.1`; without either the test skips, saying so."""

from __future__ import annotations

import json
from pathlib import Path

from vmtest_run import run_vm_test

SCENARIO = "anon-touched-421"


def test_6_1_maple_node_counts_are_exact(tmp_path: Path, tree61: str) -> None:
    out = tmp_path / "run"
    rc, verdicts, preds, _ = run_vm_test(out, SUITES="faults counts", SCENARIOS=SCENARIO,
                                         VARIANTS="baseline", KERNEL_TREE=tree61)
    not_exact = [v for v in verdicts if v["verdict"] not in ("match", "info")]
    assert rc == 0 and verdicts and not not_exact, not_exact[:5]
    # the kernel's counters had to count bulk objects: the prediction has some ...
    counts = next(p for p in preds if p["measurement"] == "counts")
    bulk = counts["allocated_in_bulk"]["maple_node"]
    assert 0 < bulk < counts["maple_node_allocated"]
    # ... and the observed per-fork count is all of them, compared as an exact row
    row = next(v for v in verdicts if v["measurement"] == "maple_node_allocated_per_fork")
    assert row["verdict"] == "match" and row["observed"] == str(counts["maple_node_allocated"])
    assert "debug cache" in row["rule"]
    failed = [v for v in verdicts if v["measurement"] == "failed_fork_allocs"]
    assert failed and all(v["key"].count(" ") == 0 for v in failed)  # no per-cache bounded rows
    assert sum("maple_node" in v["observed"] for v in failed) > len(failed) // 2
    # every faults/counts record says what the guest booted with and read back
    recs = [json.loads(x) for x in (out / "observations.jsonl").read_text().splitlines()]
    sd = {r["suite"]: r["slab_debug"] for r in recs if r["measurement"] != "error"}
    assert sd["counts"] == {"boot_param": "slub_debug=F,maple_node", "debug_caches": ["maple_node"]}
    assert sd["faults"]["debug_caches"] == ["maple_node"]
    assert sd["faults"]["boot_param"].endswith(";AF,maple_node")
