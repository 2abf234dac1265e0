"""mm model (simulator/mm.py, simulator/exec_image.py) on the real simulator maple tree."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from simulator.exec_image import build_exec_image, read_elf
from simulator.mm import PAGE_SIZE, PROT_READ, PROT_WRITE, Mm, MmError

RW = PROT_READ | PROT_WRITE
B = 0x1_0000_0000


def test_munmap_middle_splits_and_stores_null():
    """mm/vma.c vms_gather_munmap_vmas(): unmapping the middle of a VMA splits it (one store
    per split: below start and above end) and vma_iter_clear_gfp() stores NULL over the range."""
    mm = Mm()
    mm.mmap(B, 4 * PAGE_SIZE, RW)
    mm.munmap(B + PAGE_SIZE, PAGE_SIZE)
    assert [(v.start, v.end) for v in mm.vmas()] == [(B, B + PAGE_SIZE),
                                                    (B + 2 * PAGE_SIZE, B + 4 * PAGE_SIZE)]
    assert mm.map_count == 2
    assert [o.why for o in mm.history] == ["mmap_region", "__split_vma", "__split_vma",
                                           "vma_iter_clear_gfp"]
    mm.check()


def test_adjacent_compatible_anon_mmaps_merge():
    """mm/vma.c vma_merge_new_range(): an anonymous private mapping right after a compatible
    one extends it (map_count unchanged); different protections do not merge."""
    mm = Mm()
    mm.mmap(B, PAGE_SIZE, RW)
    mm.mmap(B + PAGE_SIZE, PAGE_SIZE, RW)
    assert mm.map_count == 1
    mm.mmap(B + 2 * PAGE_SIZE, PAGE_SIZE, PROT_READ)
    assert mm.map_count == 2
    with pytest.raises(MmError):
        mm.mmap(B, PAGE_SIZE, RW)  # MAP_FIXED_NOREPLACE: EEXIST
    mm.check()


def test_mprotect_splits_and_anon_vma_shared():
    """mm/vma.c vma_modify() splits at start (new below) and end; __split_vma() clones the
    anon_vma chain (mm/rmap.c anon_vma_clone), so both halves use the same anon_vma."""
    mm = Mm()
    mm.mmap(B, 3 * PAGE_SIZE, RW)
    mm.write_fault(B)
    mm.mprotect(B + PAGE_SIZE, PAGE_SIZE, PROT_READ)
    vs = list(mm.vmas())
    assert [v.perms for v in vs] == ["rw-p", "r--p", "rw-p"]
    assert len({id(v.anon_vma) for v in vs}) == 1 and vs[0].anon_vma.num_active_vmas == 3
    mm.check()


@pytest.mark.skipif(not shutil.which("gcc") or not shutil.which("setarch"),
                    reason="needs gcc and setarch")
def test_exec_image_matches_host_static_binary(tmp_path):
    """fs/binfmt_elf.c load_elf_binary() + fs/exec.c setup_arg_pages() + glibc static
    startup: the simulated image of a real static binary equals its /proc/self/maps on this
    host with ASLR off (setarch -R), except the vvar area, which differs by kernel version
    (the host's 6.18 splits [vvar]/[vvar_vclock]; 6.12 has one 4-page [vvar])."""
    src = tmp_path / "m.c"
    src.write_text('#include <fcntl.h>\n#include <unistd.h>\nint main(void){char b[8192];'
                   'int fd=open("/proc/self/maps",O_RDONLY);long n,t=0;'
                   'while((n=read(fd,b+t,sizeof b-1-t))>0)t+=n;write(1,b,t);return 0;}\n')
    exe = tmp_path / "m"
    subprocess.run(["gcc", "-O2", "-static", "-o", str(exe), str(src)], check=True,
                   capture_output=True, timeout=120)
    out = subprocess.run(["setarch", "-R", "env", "-i", str(exe)], capture_output=True,
                         text=True, timeout=30, cwd=tmp_path).stdout
    real = []
    for line in out.splitlines():
        f = line.split()
        if len(f) > 5 and f[5].startswith(("[vvar", "[vsyscall")):
            continue
        s, e = (int(x, 16) for x in f[0].split("-"))
        real.append((s, e, f[1], int(f[2], 16), f[5] if len(f) > 5 else ""))
    mm = build_exec_image(read_elf(exe, os.fspath(exe)))
    sim = [(m["start"], m["end"], m["perms"], m["offset"], m["name"]) for m in mm.maps()
           if m["name"] != "[vvar]"]
    assert sim == real
