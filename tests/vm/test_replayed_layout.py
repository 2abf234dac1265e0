"""Layouts replayed from real processes (scenarios/py-pandas.yaml: python3 with numpy and pandas,
captured on the host with `forkdiff scenario from-maps`) on the real 6.12 faults kernel:

- maps and counts end PASS with every verdict exact (the guest rebuilds 553 VMAs over 101
  per-library files from a list pushed over SFTP; the simulator replays the same list);
- the planted bug tests/planted/adjacent-file-redup.patch (dup_mmap() copies a VMA twice, losing
  the first copy, when it follows a copied VMA of the same file after a hole in the file) is
  caught on the replayed layout by the counts suite, and not on any synthetic scenario.

Real parts only: kernels built from the tree (the planted one with the patch), booted in QEMU,
the guest programs run over SSH. Warm: about a minute each."""

from __future__ import annotations

from pathlib import Path

from vmtest_run import run_vm_test

REPO = Path(__file__).resolve().parents[2]
PLANTED = REPO / "tests" / "planted" / "adjacent-file-redup.patch"
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
    rc, verdicts, _, text = run_vm_test(tmp_path / "run", SUITES="counts", VARIANTS="patched",
                                        SCENARIOS=" ".join(("py-pandas", *SYNTHETIC)),
                                        PATCHES=str(PLANTED))
    assert rc == 1, text[-3000:]
    bad = [v for v in verdicts if v["verdict"] != "match"]
    assert bad and {v["scenario"] for v in bad} == {"py-pandas"}
    # py-pandas has 3 library VMAs after a hole in their file: 3 extra vm_area_structs a fork
    vas = [v for v in bad if v["measurement"] == "vm_area_struct_allocated_per_fork"]
    assert vas and int(vas[0]["observed"]) == int(vas[0]["predicted"]) + 3
    for name in SYNTHETIC:
        mine = [v for v in verdicts if v["scenario"] == name]
        assert mine and all(v["verdict"] == "match" for v in mine)
