"""Layouts replayed from real processes (scenarios/py-pandas.yaml: python3 with numpy and pandas,
captured on the host with `forkdiff scenario from-maps`) on the real 6.12 faults kernel:

- maps and counts end PASS with every verdict exact (the guest rebuilds 553 VMAs over 101
  per-library files from a list pushed over SFTP; the simulator replays the same list);
- the planted bug tests/planted/adjacent-file-pgoff.patch (dup_mmap() gives a VMA that follows a
  copied VMA of the same file the offset where that one ends) is caught on the replayed layout,
  in the child's maps, and not on any synthetic maps scenario.

Real parts only: kernels built from the tree (the planted one with the patch), booted in QEMU,
the guest programs run over SSH. Warm: about a minute each."""

from __future__ import annotations

from pathlib import Path

import pytest
from vmtest_run import run_vm_test

pytestmark = pytest.mark.vm

REPO = Path(__file__).resolve().parents[2]
PLANTED = REPO / "tests" / "planted" / "adjacent-file-pgoff.patch"
SYNTHETIC = ("mixed-small", "dontfork-only", "wipeonfork-only", "anon-touched-21")


def test_replayed_layout_maps_and_counts_exact(tmp_path: Path) -> None:
    rc, verdicts, _, text = run_vm_test(tmp_path / "run", SUITES="maps counts", SCENARIOS="py-pandas",
                                        VARIANTS="patched")
    assert rc == 0, text[-3000:]
    assert verdicts and all(v["verdict"] == "match" for v in verdicts), \
        [v for v in verdicts if v["verdict"] != "match"][:3]
    got = {(v["suite"], v["measurement"]) for v in verdicts}
    assert {("maps", "child_maps"), ("maps", "child_map_count"),
            ("counts", "vm_area_struct_allocated_per_fork"),
            ("counts", "anon_vma_allocated_per_fork"), ("counts", "maple_node_allocated_per_fork")} <= got
    child = [v for v in verdicts if v["measurement"] == "child_maps"]
    assert child and int(child[0]["observed"].split()[0]) > 553


def test_adjacent_file_bug_caught_on_replayed_layout_only(tmp_path: Path) -> None:
    rc, verdicts, _, text = run_vm_test(tmp_path / "run", SUITES="maps", VARIANTS="patched",
                                        SCENARIOS=" ".join(("py-pandas", *SYNTHETIC)),
                                        PATCHES=str(PLANTED))
    assert rc == 1, text[-3000:]
    bad = [v for v in verdicts if v["verdict"] != "match"]
    assert bad and {v["scenario"] for v in bad} == {"py-pandas"}
    assert {v["measurement"] for v in bad} == {"child_maps"}
    # the first wrong line is a file VMA whose offset differs (map counts still agree)
    assert "layout-file:" in bad[0]["detail"]
    for name in SYNTHETIC:
        mine = [v for v in verdicts if v["scenario"] == name]
        assert mine and all(v["verdict"] == "match" for v in mine)
