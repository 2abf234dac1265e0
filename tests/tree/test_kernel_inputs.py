"""build_kernel() and `forkdiff kernel build` refuse bad input with one-line user errors, before
any copying or compiling."""

import shutil
import subprocess
import sys

import pytest

from orchestrator.errors import ForkdiffError
from orchestrator.prepare.kernel import build_kernel, check_build_tools


def test_missing_tree_path(tmp_path):
    with pytest.raises(ForkdiffError, match="does not exist"):
        build_kernel("patched", "faults", tree=tmp_path / "nope", progress=False)


def test_folder_that_is_not_a_kernel_tree(tmp_path):
    (tmp_path / "README").write_text("not linux\n")
    with pytest.raises(ForkdiffError, match="not a kernel tree"):
        build_kernel("baseline", "faults", tree=tmp_path, progress=False)


def test_unknown_variant_and_profile():
    with pytest.raises(ForkdiffError, match="unknown kernel variant 'old'"):
        build_kernel("old", "faults", progress=False)
    with pytest.raises(ForkdiffError, match="unknown kconfig profile 'fast'"):
        build_kernel("patched", "fast", progress=False)


def test_missing_build_tools_are_named(tmp_path, monkeypatch):
    """A PATH holding every tool but gcc and bc (symlinks to the real ones)."""
    for tool in ("make", "flex", "bison", "ccache", "patch", "tar", "perl"):
        (tmp_path / tool).symlink_to(shutil.which(tool))
    with pytest.raises(ForkdiffError) as info:
        check_build_tools(str(tmp_path))
    assert "missing from PATH: gcc, bc" in info.value.cause and "make setup" in info.value.next_step
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ForkdiffError, match="gcc, bc"):
        build_kernel("patched", "faults", progress=False)


def test_missing_patch_in_PATCHES(tmp_path):
    with pytest.raises(ForkdiffError, match="missing.patch does not exist"):
        build_kernel("patched", "faults", patches=[tmp_path / "missing.patch"], progress=False)


def test_cli_prints_one_line_and_exits_2(tmp_path):
    res = subprocess.run([sys.executable, "-m", "orchestrator", "kernel", "build", "--variant",
                          "patched", "--profile", "faults", "--tree", str(tmp_path / "nope")],
                         capture_output=True, text=True)
    assert res.returncode == 2 and res.stdout == ""
    assert res.stderr.count("\n") == 1 and res.stderr.startswith("forkdiff: error: ")
    assert "Traceback" not in res.stderr
