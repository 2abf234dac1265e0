"""Corrupt guest programs (orchestrator/guestbin.py): a truncated binary is detected and rebuilt
with the real guest Makefile, in a copy of guest/ (the repository's guest/bin is not touched)."""

import shutil
from pathlib import Path

import pytest

from orchestrator import guestbin
from orchestrator.errors import ForkdiffError

GUEST = Path(__file__).parents[2] / "guest"


@pytest.fixture
def guest_copy(tmp_path):
    dst = tmp_path / "guest"
    shutil.copytree(GUEST, dst, ignore=shutil.ignore_patterns("bin"))
    assert guestbin.programs(dst / "bin") == []
    import subprocess

    subprocess.run(["make", "-s", "-C", str(dst)], check=True, capture_output=True, timeout=600)
    return dst


def test_truncated_program_is_detected_and_rebuilt(guest_copy):
    spawn = guest_copy / "bin" / "spawn"
    good = spawn.read_bytes()
    assert guestbin.elf_intact(spawn)
    spawn.write_bytes(good[: len(good) // 2])
    assert not guestbin.elf_intact(spawn)
    progs = guestbin.programs(guest_copy / "bin")
    assert spawn in progs and guestbin.elf_intact(spawn)
    assert spawn.stat().st_size == len(good)


def test_unrebuildable_program_is_an_error(guest_copy):
    (guest_copy / "bin" / "notes").write_bytes(b"\x7fELF but cut short")
    with pytest.raises(ForkdiffError, match="could not be rebuilt"):
        guestbin.programs(guest_copy / "bin")
