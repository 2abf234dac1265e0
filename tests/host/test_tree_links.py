"""The copy a variant's patches go onto (orchestrator/prepare/patches.py prepare_copy): a tree
forkdiff unpacked into the cache is hard-linked, a user's tree is copied, and in both cases the
original never changes when a patch is applied. Small trees made here; real cp and patch."""

from __future__ import annotations

from pathlib import Path

from orchestrator.prepare.patches import prepare_copy

PATCH = """--- a/mm/fork.c
+++ b/mm/fork.c
@@ -1,2 +1,2 @@
 int a;
-int b;
+int c;
"""


def _tree(root: Path) -> Path:
    (root / "mm").mkdir(parents=True)
    (root / "mm/fork.c").write_text("int a;\nint b;\n")
    (root / "README").write_text("tree\n")
    return root


def test_cache_tree_is_linked_and_never_changed(tmp_path, monkeypatch):
    monkeypatch.setenv("FORKDIFF_CACHE", str(tmp_path / "cache"))
    tree = _tree(tmp_path / "cache/trees/linux-x")
    patch = tmp_path / "p.patch"
    patch.write_text(PATCH)
    dest = tmp_path / "cache/src/k"
    prepare_copy(tree, [patch], dest)
    assert (dest / "mm/fork.c").read_text() == "int a;\nint c;\n"
    assert (tree / "mm/fork.c").read_text() == "int a;\nint b;\n"
    # untouched files share the unpacked tree's inode; the patched one has its own
    assert (dest / "README").stat().st_ino == (tree / "README").stat().st_ino
    assert (dest / "mm/fork.c").stat().st_ino != (tree / "mm/fork.c").stat().st_ino


def test_user_tree_is_copied_not_linked(tmp_path, monkeypatch):
    monkeypatch.setenv("FORKDIFF_CACHE", str(tmp_path / "cache"))
    tree = _tree(tmp_path / "checkout")
    patch = tmp_path / "p.patch"
    patch.write_text(PATCH)
    dest = tmp_path / "cache/src/k"
    prepare_copy(tree, [patch], dest)
    assert (dest / "README").stat().st_ino != (tree / "README").stat().st_ino
    assert (tree / "mm/fork.c").read_text() == "int a;\nint b;\n"
    assert (dest / "mm/fork.c").read_text() == "int a;\nint c;\n"
