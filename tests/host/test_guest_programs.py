"""The guest programs run on the host (any Linux): the layout builder creates exactly the
VMAs Scenario.layout() computes, refuses merges, fills to a total VMA count, and mapsprobe's
child sees what fork() does with DONTFORK/WIPEONFORK. Real programs, real (host) kernel."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from simulator.scenario import from_dict, load

ROOT = Path(__file__).resolve().parents[2]
BIN = ROOT / "guest" / "bin"
SCENARIOS = ROOT / "scenarios"


@pytest.fixture(scope="module", autouse=True)
def built() -> None:
    subprocess.run(["make", "-s", "-C", str(ROOT / "guest")], check=True, capture_output=True)


def run(prog: str, *args: str, ok: bool = True) -> tuple[int, list[dict]]:
    r = subprocess.run([str(BIN / prog), *args], capture_output=True, text=True, timeout=120)
    recs = [json.loads(line) for line in r.stdout.splitlines() if line.strip()]
    assert all(rec["prog"] == prog for rec in recs)
    if ok:
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr
    return r.returncode, recs


def by_event(recs: list[dict]) -> dict[str, dict]:
    return {r.get("event") or r.get("measurement"): r for r in recs}


def maps_ranges(rec: dict) -> dict[tuple[int, int], dict]:
    return {(int(m["start"], 16), int(m["end"], 16)): m for m in rec["maps"]}


@pytest.mark.parametrize("name", ["mixed-small", "dontfork-only", "wipeonfork-only"])
def test_mapsprobe_layout_and_fork_semantics(name: str) -> None:
    sc = load(SCENARIOS / f"{name}.yaml")
    _, recs = run("mapsprobe", *sc.guest_args())
    ev = by_event(recs)
    assert ev["layout"]["layout_vmas"] == sc.layout_count
    parent = maps_ranges(ev["parent_before"])
    child = maps_ranges(ev["child"])
    for v in sc.layout():
        m = parent[(v.start, v.end)]  # exactly this range: no merge, no split
        shared = v.kind.startswith("shared")
        assert m["perms"][3] == ("s" if shared else "p")
        assert m["perms"][:3] == "".join(
            c if c in v.prot else "-" for c in "rwx"), (m, v)
        assert ((v.start, v.end) in child) == (v.advice != "dontfork")
    layout_adv = [v for v in sc.layout() if v.advice != "none"]
    seen = ev["child_layout"]["vmas"]
    assert [int(x["start"], 16) for x in seen] == [v.start for v in layout_adv]
    for x, v in zip(seen, layout_adv, strict=True):
        if v.advice == "dontfork":
            assert x["present"] is False and x["overlapped"] is False
        else:
            assert x["present"] is True and x["zero"] is True
    touched = sum({"all": v.end - v.start, "first": 4096, "none": 0}[v.touch] // 4096
                  for v in sc.layout() if v.advice == "none")
    assert ev["child_layout"]["touched_pages_copied"] == touched
    assert ev["child_layout"]["touched_pages_differ"] == 0
    dontfork = sum(1 for v in sc.layout() if v.advice == "dontfork")
    assert ev["child"]["map_count"] == ev["parent_before"]["map_count"] - dontfork
    assert ev["parent_after"]["unchanged"] is True
    assert ev["parent_after"]["maps"] == ev["parent_before"]["maps"]


def test_file_vmas_map_the_layout_file() -> None:
    sc = from_dict({"name": "files", "gap_pages": 0, "groups": [
        {"count": 2, "pages": 3, "prot": "r", "kind": "file"},
        {"count": 1, "pages": 1, "prot": "rw", "kind": "shared-file", "touch": "all"},
        {"count": 1, "pages": 2, "prot": "rw", "kind": "anon", "touch": "first"}]})
    _, recs = run("mapsprobe", *sc.guest_args())
    parent = maps_ranges(by_event(recs)["parent_before"])
    inodes = set()
    for v in sc.layout():
        m = parent[(v.start, v.end)]
        if "file" in v.kind:
            assert m["path"] == "/tmp/forkdiff-layout.dat" and m["offset"] == "0x0"
            inodes.add(m["inode"])
        else:
            assert m["inode"] == 0
    assert len(inodes) == 1


def test_merge_is_an_error() -> None:
    """gap 0 and identical neighbours: the kernel merges them, the builder must refuse."""
    rc, recs = run("mapsprobe", "--gap", "0", "2x1:rw:anon:none:none", ok=False)
    assert rc == 3
    assert recs[-1]["event"] == "error" and recs[-1]["stage"] == "verify"
    assert "merged" in recs[-1]["message"]


def test_occupied_address_is_an_error() -> None:
    rc, recs = run("mapsprobe", "--base", "0x400000", "1x1:rw:anon:none:none", ok=False)
    assert rc == 3 and recs[-1]["stage"] == "layout" and recs[-1]["errno"] > 0


@pytest.mark.parametrize("spec", ["3x1:rw:anon:none", "0x1:rw:anon:none:none",
                                  "1x1:r:anon:none:all", "1x1:rw:file:wipeonfork:none",
                                  "1x1:rw:heap:none:none"])
def test_bad_spec_is_a_usage_error(spec: str) -> None:
    rc, recs = run("mapsprobe", spec, ok=False)
    assert rc == 2 and recs[-1]["stage"] == "args"


@pytest.mark.parametrize("total", [40, 300])
def test_spawn_fills_to_total(total: int) -> None:
    _, recs = run("spawn", "--total", str(total), "--duration", "0.05")
    ev = by_event(recs)
    assert ev["layout"]["map_count"] == total
    assert ev["spawn"]["map_count"] == total
    assert 0 < ev["layout"]["added"] < total
    assert ev["spawn"]["forks"] > 0 and ev["spawn"]["fork_failures"] == 0
    assert ev["spawn"]["forks_per_s"] == pytest.approx(ev["spawn"]["forks"] / ev["spawn"]["seconds"], rel=1e-4)


def test_spawn_warms_up_and_takes_the_median_of_its_slices() -> None:
    """Host run of the real guest program: the warm-up is unrecorded (its forks are not in
    `forks`), the measured loop is cut into at most 40 slices, and the median slice rate lies
    between the slowest and the fastest slice, so within a factor of the mean's range."""
    _, recs = run("spawn", "--total", "40", "--duration", "0.2", "--warmup", "0.05")
    sp = by_event(recs)["spawn"]
    assert sp["warmup_seconds"] == pytest.approx(0.05)
    assert sp["warmup_forks"] > 0
    assert 1 <= sp["slices"] <= 40
    assert sp["forks_per_s_median"] > 0
    # each slice holds at least one fork and lasts at least 0.2/40 s: no slice rate (so no
    # median) can exceed forks / (0.2/40)
    assert sp["forks_per_s_median"] <= sp["forks"] / (0.2 / 40)
    _, recs = run("spawn", "--total", "40", "--duration", "0.1")
    assert by_event(recs)["spawn"]["warmup_seconds"] == pytest.approx(0.01)  # default S/10


def test_spawn_total_below_own_vmas_is_an_error() -> None:
    rc, recs = run("spawn", "--total", "2", "--duration", "0.05", ok=False)
    assert rc == 3 and recs[-1]["stage"] == "fill"


def test_faultsweep_without_fail_nth_says_so() -> None:
    if Path("/proc/thread-self/fail-nth").exists():
        pytest.skip("this host has fail-nth; the VM tests cover the sweep")
    rc, recs = run("faultsweep", "1x1:rw:anon:none:all", ok=False)
    assert rc == 4 and recs[-1]["stage"] == "fail-nth"


def test_layout_builder_has_no_small_group_limit() -> None:
    """A 300-group scenario (refused while the builder kept at most 64) is accepted by the
    simulator and built VMA for VMA by the real builder."""
    groups = [{"count": 1, "prot": "rw" if i % 2 else "r"} for i in range(300)]
    sc = from_dict({"name": "many", "gap_pages": 0, "groups": groups})
    _, recs = run("mapsprobe", *sc.guest_args())
    ev = by_event(recs)
    assert ev["layout"]["layout_vmas"] == 300 and ev["layout"]["verified"] is True
    maps = maps_ranges(ev["parent_before"])
    for v in sc.layout():
        assert (v.start, v.end) in maps
