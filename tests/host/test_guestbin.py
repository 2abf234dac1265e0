"""Guest programs (orchestrator/prepare/guestbin.py), in copies of guest/ (the repository's guest/bin
is not touched): missing programs are built with the real guest Makefile before anything boots,
a build that fails stops with the command to run, a truncated binary is detected and rebuilt.

The `forkdiff run` tests go through the real CLI, suite planner and initramfs builder; only
the kernel build and the VM are FAKES (a BuiltKernel pointing nowhere, and a Guest class that
records what it was given and refuses to boot), since what is checked happens before a boot."""

import shutil
import subprocess
from pathlib import Path

import pytest
from fake_guest import FakeGuest

from orchestrator.errors import ForkdiffError
from orchestrator.prepare import guestbin

GUEST = Path(__file__).parents[2] / "guest"
PROGS = ("spawn", "mapsprobe", "faultsweep", "forkcount", "observe")


@pytest.fixture
def unbuilt_guest(tmp_path, monkeypatch):
    """A copy of guest/ as a fresh checkout has it: no bin/ (make guest never ran)."""
    monkeypatch.setenv("FORKDIFF_CACHE", str(tmp_path / "cache"))
    dst = tmp_path / "guest"
    shutil.copytree(GUEST, dst, ignore=shutil.ignore_patterns("bin"))
    assert not (dst / "bin").exists()
    return dst


@pytest.fixture
def guest_copy(unbuilt_guest):
    subprocess.run(["make", "-s", "-C", str(unbuilt_guest)], check=True, capture_output=True,
                   timeout=600)
    return unbuilt_guest


def test_makefile_names_the_programs():
    assert tuple(guestbin.makefile_programs(GUEST)) == PROGS


def test_missing_programs_are_built(unbuilt_guest):
    progs = guestbin.programs(unbuilt_guest / "bin")
    assert sorted(p.name for p in progs) == sorted(PROGS)
    assert all(guestbin.elf_intact(p) for p in progs)


def test_out_of_date_program_is_rebuilt(guest_copy):
    spawn = guest_copy / "bin" / "spawn"
    old = spawn.stat().st_mtime_ns
    src = guest_copy / "spawn.c"
    src.write_text(src.read_text() + "\n/* changed */\n")
    guestbin.programs(guest_copy / "bin")
    assert spawn.stat().st_mtime_ns > old and guestbin.elf_intact(spawn)


def test_failed_build_names_the_command(unbuilt_guest, monkeypatch):
    monkeypatch.setenv("CC", "false")  # the compiler "fails": make exits non-zero
    with pytest.raises(ForkdiffError) as err:
        guestbin.programs(unbuilt_guest / "bin")
    assert "mapsprobe" in str(err.value) and "make guest" in err.value.next_step


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


# ------------------------------------------------------- forkdiff run, up to the boot (FAKES)
@pytest.fixture(scope="session")
def tree_path() -> str:
    """The default tree, unpacked in the session's cache (once; what the kernel builds use):
    given as KERNEL_TREE=<path>, so the runs below, each with an empty cache of its own, do not
    unpack 1.7 GB each (26 s) for a check that happens before any build."""
    from orchestrator.prepare.tree import default_tree

    return str(default_tree().path)


def _fake_run(monkeypatch, guest_dir: Path, tmp_path: Path, tree: str) -> tuple[int, list]:
    from orchestrator import cli
    from orchestrator.prepare import kernel, rootfs
    from orchestrator.vm import guest as vm

    def fake_build_kernel(variant, profile, *a, **kw):  # FAKE: no kernel is built
        return kernel.BuiltKernel(variant, profile, tmp_path / "bzImage", tmp_path / "config",
                                  "0-fake", None, tmp_path, tmp_path / "build.log")

    refusing = FakeGuest.refusing()  # the one FAKE guest, refusing to boot
    monkeypatch.setattr(kernel, "build_kernel", fake_build_kernel)
    monkeypatch.setattr(vm, "Guest", refusing)
    monkeypatch.setattr(rootfs, "DEFAULT_GUEST_BIN", guest_dir / "bin")
    monkeypatch.setenv("KERNEL_TREE", tree)
    rc = cli.main(["run", "--suite", "maps", "--variant", "patched", "--out",
                   str(tmp_path / "out")])
    return rc, refusing.booted


def _image_names(image: Path) -> set[str]:
    out = subprocess.run(["cpio", "-it", "--quiet"], input=image.read_bytes(),
                         capture_output=True, check=True).stdout.decode()
    return set(out.split())


def test_run_on_a_checkout_without_guest_programs_builds_them_before_booting(
        tree_path, unbuilt_guest, tmp_path, monkeypatch, capsys):
    rc, booted = _fake_run(monkeypatch, unbuilt_guest, tmp_path, tree_path)
    out = capsys.readouterr()
    assert rc != 0  # the fake guest refuses to boot
    assert "fake guest" in out.out + out.err
    assert len(booted) == 1
    image = booted[0].path
    names = _image_names(image)
    assert {f"usr/local/bin/{p}" for p in PROGS} <= names
    assert "building the guest programs" in out.out


def test_run_stops_before_booting_when_the_programs_cannot_be_built(
        tree_path, unbuilt_guest, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CC", "false")
    rc, booted = _fake_run(monkeypatch, unbuilt_guest, tmp_path, tree_path)
    err = capsys.readouterr().err
    assert rc != 0
    assert booted == []
    assert "make guest" in err and "mapsprobe" in err
