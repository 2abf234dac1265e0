"""`forkdiff scenario from-maps`: a captured /proc/PID/maps (+ smaps) as a list scenario, and
the per-VMA scenario format itself. The fixtures (tests/data/maps/handmade.*) are written by
hand; every expected line below is worked out by hand in the comments, not by the code."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from simulator import scenario as sc
from simulator.from_maps import GAP_KEEP, convert, parse_maps
from simulator.predict import build_parent

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data" / "maps"

# base: the first reproduced VMA is [heap] at 0x1000000: 0x100000000 + 0x1000000 % 1 GiB.
# libfoo at 0x7f0000000000 follows the heap's end 0x1021000 by more than 1 GiB: the gap
# becomes 1 GiB + gap % 1 GiB = 0x40000000 + (0 - 0x1021000) % 0x40000000 = 0x7efdf000, so it
# starts at 0x21000 + 0x7efdf000 = 0x7f000000 past base (0x180000000: 0 modulo 1 GiB, as
# 0x7f0000000000 is). The stack: 0x7f015000 + 0x40000000 + (0 - 0x15000) % 0x40000000
# = 0xff000000 past base.
WITH_SMAPS = [
    "0x0 33 rw anon t=33",                  # [heap], Anonymous 132 kB = 33 pages: all
    "0x7f000000 2 r file:0@0x0",            # libfoo r--
    "0x7f002000 3 rx file:0@0x2000",        # libfoo r-x
    "0x7f005000 1 r file:0@0x5000",         # libfoo r-- (rodata)
    "0x7f006000 1 r file:0@0x6000 w t=1",   # RELRO: written (4 kB), read-only now: w
    "0x7f007000 1 rw file:0@0x7000 t=1",    # .data
    "0x7f008000 2 rw anon t=2",             # bss-like anon, 8 kB written
    "0x7f00a000 1 none anon",               # PROT_NONE guard
    "0x7f00b000 1 rw anon",
    "0x7f00c000 1 rw anon nr",              # same as the one before: the kernel would merge
    "0x7f010000 2 rw shared-anon",          # /dev/zero (deleted), shared
    "0x7f012000 1 r shared-file:1@0x0",     # /data/shared.db, shared
    "0x7f013000 2 r file:0@0x3000",         # libfoo again, after a shared file: apart
    "0xff000000 33 rw anon t=2",            # [stack], 8 kB written
]


def _convert(smaps: bool = True, **kw):
    return convert((DATA / "handmade.maps").read_text(),
                   (DATA / "handmade.smaps").read_text() if smaps else None, name="handmade", **kw)


def test_from_maps_with_smaps_is_worked_out_by_hand():
    conv = _convert()
    s = conv.scenario
    assert s.base == 0x1_0100_0000
    assert s.vma_specs() == WITH_SMAPS
    assert s.files == ("/lib/libfoo.so", "/data/shared.db")
    # 19 lines: the program's own 2, [vvar], [vdso], [vsyscall] are left out
    assert conv.notes[0] == "14 of 19 VMAs reproduced, 2 files, 39 pages written"
    assert {(x.name or "anon") for x in conv.skipped} == {"/usr/bin/prog", "[vvar]", "[vdso]", "[vsyscall]"}
    assert any("2 gaps above 1 GiB" in n for n in conv.notes)
    assert any("1 x nr" in n for n in conv.notes)
    # every address keeps its place modulo 1 GiB
    src = [ln for ln in parse_maps((DATA / "handmade.maps").read_text()) if ln not in conv.skipped]
    assert [v.start % GAP_KEEP for v in s.vmas] == [ln.start % GAP_KEEP for ln in src]
    assert [v.pages for v in s.vmas] == [ln.pages for ln in src]


def test_without_smaps_nothing_is_written_and_relro_is_still_apart():
    """Without smaps the RELRO segment (r--, contiguous with the r-- before it) would merge
    with it if mapped read-only: it is mapped writable and mprotect()ed (w), as ld.so did."""
    specs = _convert(smaps=False).scenario.vma_specs()
    assert specs[4] == "0x7f006000 1 r file:0@0x6000 w"
    assert all("t=" not in x for x in specs)


def test_the_yaml_reads_back_and_compact_dict_round_trips():
    s = _convert().scenario
    text = sc.dump_yaml(s, ["a comment"])
    assert text.startswith("# a comment\nname: handmade\n")
    back = sc.from_dict(__import__("yaml").safe_load(text), source="y")
    assert back.vmas == s.vmas and back.files == s.files
    d = s.to_dict()
    assert "vmas_z" in d and "vmas" not in d
    assert sc.from_dict(d).vmas == s.vmas


def test_guest_list_lines():
    s = _convert().scenario
    lines = s.guest_list().splitlines()
    # START(hex, absolute) PAGES PROT KIND FILE PGOFF(pages) ADVICE TOUCHED FLAGS
    assert lines[0] == "101000000 33 rw anon -1 0 none 33 0"
    assert lines[4] == "180006000 1 r file 0 6 none 1 2"      # w = VF_MAPPED_WRITABLE
    assert lines[9] == "18000c000 1 rw anon -1 0 none 0 1"    # nr = VF_NORESERVE
    assert lines[11] == "180012000 1 r shared-file 1 0 none 0 0"
    assert s.guest_args() == ["--layout-list", sc.LIST_PATH]


def test_simulator_replays_the_list():
    """The model builds the same VMAs: RELRO keeps VM_ACCOUNT, nr has VM_NORESERVE, the
    written private VMAs have an anon_vma, nothing merged."""
    from simulator.mm import VM_ACCOUNT, VM_NORESERVE

    s = _convert().scenario
    mm = build_parent(s)
    got = {v.start: v for v in mm.vmas()}
    for lv in s.vmas:
        v = got[lv.start]
        assert v.end == lv.end
        assert (v.anon_vma is not None) == (lv.touched > 0)
    relro = got[s.base + 0x7f006000]
    assert relro.perms == "r--p" and relro.flags & VM_ACCOUNT and relro.pgoff == 6
    assert got[s.base + 0x7f00c000].flags & VM_NORESERVE
    assert got[s.base + 0x7f012000].file == sc.LIST_FILE_FMT % 1


@pytest.mark.parametrize("vmas,why", [
    (["0x0 1 rw anon", "0x1000 1 rw anon"], "would merge"),
    (["0x0 1 r file:0@0x0", "0x1000 1 r file:0@0x1000"], "would merge"),
    (["0x0 1 rw anon", "0x1000 1 rw anon a=dontfork"], "would merge"),  # merges at its mmap
    (["0x1000 1 rw anon", "0x0 1 r anon"], "must ascend"),
    (["0x0 1 r anon t=1"], "'w' in prot"),
    (["0x0 1 rw file:0@0x800"], "page aligned"),
    (["0x0 1 rw shared-anon a=wipeonfork"], "wipeonfork"),
    (["0x0 1 rw anon x=1"], "unknown option"),
])
def test_bad_lists_are_refused(vmas, why):
    with pytest.raises(sc.ScenarioError, match=why):
        sc.from_dict({"name": "x", "vmas": vmas}, source="l.yaml")


def test_lists_that_do_not_merge_are_accepted():
    ok = sc.from_dict({"name": "x", "vmas": [
        "0x0 1 r file:0@0x0", "0x1000 1 r file:0@0x2000",   # offsets not contiguous
        "0x2000 1 r file:1@0x3000",                          # another file
        "0x3000 1 rw shared-anon", "0x4000 1 rw shared-anon",  # each its own shmem file
        "0x5000 1 rw anon", "0x6000 1 rw anon nr"]})
    assert ok.layout_count == 7


def test_cli_prints_yaml_and_notes(tmp_path):
    r = subprocess.run([sys.executable, "-m", "orchestrator", "scenario", "from-maps",
                        str(DATA / "handmade.maps"), "--smaps", str(DATA / "handmade.smaps"),
                        "--name", "hm"], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "not reproduced: 1 x [vdso]" in r.stderr
    f = tmp_path / "hm.yaml"
    f.write_text(r.stdout)
    assert sc.load(f).vma_specs() == WITH_SMAPS


def test_suite_jobs_push_the_list_and_carry_it_compressed(tmp_path):
    """Each suite's job of a list scenario names --layout-list, pushes guest_list() to
    LIST_PATH before it runs, and its records carry the VMAs compressed (scenario vmas_z),
    from which compare rebuilds the same scenario; spawn forks it as it is (no --total)."""
    from orchestrator.analysis.job_predictions import spawn_layout
    from orchestrator.run.suites import RunOptions, plan

    s = _convert().scenario
    for suite in ("maps", "faults", "counts", "spawn"):
        jobs = [j for j in plan(RunOptions(suite=suite, out=tmp_path, scenarios=[s], vmas=(21,)))
                if j.scenario == "handmade"]
        assert len(jobs) == 1, suite
        job = jobs[0]
        assert job.uploads == ((sc.LIST_PATH, s.guest_list()),)
        assert "--layout-list" in job.args and job.vmas == 14
        assert "--total" not in job.args
        d = spawn_layout(job.scenario_dict) if suite == "spawn" else job.scenario_dict
        assert sc.from_dict(d).vmas == s.vmas
