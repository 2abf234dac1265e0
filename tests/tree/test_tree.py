"""Kernel tree resolution (orchestrator/prepare/tree.py): validation errors name the cause."""

import pytest

from orchestrator.errors import ForkdiffError
from orchestrator.prepare.tree import resolve_tree


def test_missing_tree_path(tmp_path):
    with pytest.raises(ForkdiffError, match="does not exist"):
        resolve_tree(tmp_path / "nope")


def test_folder_that_is_not_a_kernel_tree(tmp_path):
    (tmp_path / "Makefile").write_text("all:\n")
    with pytest.raises(ForkdiffError, match="not a kernel tree: missing kernel/fork.c"):
        resolve_tree(tmp_path)


def test_file_instead_of_folder(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(ForkdiffError, match="not a folder"):
        resolve_tree(f)


def test_default_tree_is_the_debian_package(monkeypatch):
    monkeypatch.delenv("KERNEL_TREE", raising=False)
    tree = resolve_tree(None)
    assert tree.is_default and tree.identity.startswith("debian:linux-source-6.12:")
    assert tree.version.startswith("6.12")
    assert (tree.path / "kernel/fork.c").is_file()
