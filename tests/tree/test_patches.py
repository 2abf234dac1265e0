"""Variant patches (orchestrator/prepare/patches.py) on the real default tree: the baseline patch applies,
a patch that does not apply names its file and hunk, and the tree patches are applied to is a
copy: the source tree is left byte-for-byte as it was."""

import os
import shutil

import pytest

from orchestrator.errors import ForkdiffError
from orchestrator.prepare.kernel import detect_dup_mmap_model
from orchestrator.prepare.patches import (
    apply_patch,
    baseline_patches,
    check_applies,
    patch_identity,
    prepare_copy,
)
from orchestrator.prepare.tree import resolve_tree

BOGUS = """--- a/kernel/fork.c
+++ b/kernel/fork.c
@@ -1,3 +1,3 @@
-this line is not in fork.c
+neither is this one
 nor this context
 nor this
"""


@pytest.fixture(scope="module")
def tree():
    return resolve_tree(None)


def listing(root):
    """(path, size, mtime_ns, mode) of every file and folder under root."""
    out = []
    for dirpath, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files) + dirs:
            st = os.lstat(os.path.join(dirpath, name))
            out.append((os.path.relpath(os.path.join(dirpath, name), root), st.st_size,
                        st.st_mtime_ns, st.st_mode))
    return out


def test_baseline_patch_applies_to_default_tree(tree):
    patches = baseline_patches()
    assert patches and all(p.suffix == ".patch" for p in patches)
    check_applies(tree.path, patches)  # raises ForkdiffError if a hunk no longer applies


def test_default_tree_dup_mmap_uses_mt_dup(tree):
    assert detect_dup_mmap_model(tree.path) == "patched"


def test_patch_that_does_not_apply_names_file_and_hunk(tree, tmp_path):
    bogus = tmp_path / "0001-bogus.patch"
    bogus.write_text(BOGUS)
    with pytest.raises(ForkdiffError) as info:
        check_applies(tree.path, [bogus])
    msg = info.value.one_line()
    assert "0001-bogus.patch" in msg and "kernel/fork.c: Hunk #1 FAILED" in msg


def test_apply_patch_dry_run_failure_leaves_copy_untouched(tmp_path, tree):
    (tmp_path / "kernel").mkdir()
    shutil.copy2(tree.path / "kernel/fork.c", tmp_path / "kernel/fork.c")
    before = (tmp_path / "kernel/fork.c").read_bytes()
    bogus = tmp_path / "bogus.patch"
    bogus.write_text(BOGUS)
    with pytest.raises(ForkdiffError, match="bogus.patch does not apply"):
        apply_patch(tmp_path, bogus, tmp_path / "log")
    assert (tmp_path / "kernel/fork.c").read_bytes() == before
    assert not list(tmp_path.rglob("*.rej")) and not list(tmp_path.rglob("*.orig"))


def test_missing_patch_file_is_a_user_error(tmp_path):
    with pytest.raises(ForkdiffError, match="does not exist"):
        patch_identity([tmp_path / "nope.patch"])


def test_source_tree_is_never_modified(tree, tmp_path):
    """Real copy + real baseline patch, exactly as a build does it; the source tree's listing
    (sizes, mtimes, modes) and fork.c are unchanged, the copy holds the baseline dup_mmap()."""
    before = listing(tree.path)
    fork_before = (tree.path / "kernel/fork.c").read_bytes()
    dest = tmp_path / "copy"
    try:
        prepare_copy(tree.path, baseline_patches(), dest, tmp_path / "log")
        assert listing(tree.path) == before
        assert (tree.path / "kernel/fork.c").read_bytes() == fork_before
        assert detect_dup_mmap_model(dest) == "baseline"
        assert detect_dup_mmap_model(tree.path) == "patched"
    finally:
        shutil.rmtree(dest, ignore_errors=True)
