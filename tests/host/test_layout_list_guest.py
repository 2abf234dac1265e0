"""The guest layout builder on a per-VMA list (--layout-list), run on the host: it builds a
replayed layout VMA for VMA as the simulator does, and 20,000 VMAs with no group cap. Real
programs, real (host) kernel."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from simulator import scenario as sc
from simulator.predict import build_parent

ROOT = Path(__file__).resolve().parents[2]
BIN = ROOT / "guest" / "bin"
DATA = ROOT / "tests" / "data" / "maps"


@pytest.fixture(scope="module", autouse=True)
def built() -> None:
    subprocess.run(["make", "-s", "-C", str(ROOT / "guest")], check=True, capture_output=True)


def run_list(prog: str, s: sc.Scenario, tmp: Path, *extra: str) -> tuple[subprocess.CompletedProcess, dict]:
    lst = tmp / "layout.list"
    lst.write_text(s.guest_list())
    r = subprocess.run([str(BIN / prog), "--layout-list", str(lst), *extra], capture_output=True,
                       text=True, timeout=600)
    ev = {}
    for line in r.stdout.splitlines():
        rec = json.loads(line)
        ev[rec.get("event") or rec.get("measurement")] = rec
    return r, ev


def layout_lines(maps: list[dict], s: sc.Scenario) -> list[tuple]:
    lo, hi = s.vmas[0].start, s.vmas[-1].end
    return [(int(m["start"], 16), int(m["end"], 16), m["perms"], int(m["offset"], 16), m.get("path", ""))
            for m in maps if lo <= int(m["start"], 16) < hi]


def sim_lines(s: sc.Scenario) -> list[tuple]:
    mm = build_parent(s)
    lo, hi = s.vmas[0].start, s.vmas[-1].end
    return [(m["start"], m["end"], m["perms"], m["offset"], m["name"]) for m in mm.maps()
            if lo <= m["start"] < hi]


def test_handmade_layout_is_built_as_the_simulator_replays_it(tmp_path):
    from simulator.from_maps import convert

    s = convert((DATA / "handmade.maps").read_text(), (DATA / "handmade.smaps").read_text(),
                name="handmade").scenario
    r, ev = run_list("mapsprobe", s, tmp_path)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr
    assert ev["layout"]["verified"] is True and ev["layout"]["layout_vmas"] == 14
    assert ev["layout"]["files"] == 2
    assert layout_lines(ev["parent_before"]["maps"], s) == sim_lines(s)
    # the child sees every written page of the copied private memory
    assert ev["child_layout"]["touched_pages_differ"] == 0
    assert ev["child_layout"]["touched_pages_copied"] == 39


def library_layout(n: int) -> sc.Scenario:
    """n VMAs shaped like shared libraries (r--, r-x, r--, RELRO r-- written, rw- written, a
    bss-like anon and a PROT_NONE guard), 50 files, one page gap between libraries."""
    seg = ["{a:#x} 2 r file:{f}@{o0:#x}", "{a1:#x} 3 rx file:{f}@{o1:#x}", "{a2:#x} 1 r file:{f}@{o2:#x}",
           "{a3:#x} 1 r file:{f}@{o3:#x} w t=1", "{a4:#x} 1 rw file:{f}@{o4:#x} t=1",
           "{a5:#x} 2 rw anon t=1", "{a6:#x} 1 none anon"]
    vmas, addr, i = [], 0, 0
    while len(vmas) < n:
        f, base_off = i % 50, (i // 50) * 0x20000
        offs = [base_off, base_off + 0x2000, base_off + 0x5000, base_off + 0x7000, base_off + 0x8000]
        addrs = [addr, addr + 0x2000, addr + 0x5000, addr + 0x6000, addr + 0x7000, addr + 0x8000, addr + 0xa000]
        kw = {"f": f, "a": addrs[0], **{f"a{k}": addrs[k] for k in range(1, 7)},
              **{f"o{k}": offs[k] for k in range(5)}}
        vmas += [x.format(**kw) for x in seg]
        addr += 0xc000
        i += 1
    return sc.from_dict({"name": f"libs-{n}", "vmas": vmas[:n]}, source="generated")


def test_20000_vma_list_builds_and_matches_the_simulator(tmp_path):
    s = library_layout(20000)
    assert s.layout_count == 20000
    t = time.monotonic()
    r, ev = run_list("mapsprobe", s, tmp_path)
    took = time.monotonic() - t
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr
    assert ev["layout"]["verified"] is True and ev["layout"]["layout_vmas"] == 20000
    assert ev["layout"]["map_count"] > 20000
    assert took < 120
    assert layout_lines(ev["parent_before"]["maps"], s) == sim_lines(s)
    assert ev["child"]["map_count"] == ev["parent_before"]["map_count"]


def test_bad_list_line_is_a_usage_error(tmp_path):
    lst = tmp_path / "bad.list"
    lst.write_text("100000000 1 rw anon -1 0 none 0 0\n100000000 1 rw anon -1 0 none 0 0\n")
    r = subprocess.run([str(BIN / "mapsprobe"), "--layout-list", str(lst)], capture_output=True, text=True)
    assert r.returncode == 2 and "overlaps" in r.stdout
    lst.write_text("100000000 1 rw bogus -1 0 none 0 0\n")
    r = subprocess.run([str(BIN / "mapsprobe"), "--layout-list", str(lst)], capture_output=True, text=True)
    assert r.returncode == 2 and "is not 'START PAGES" in r.stdout
