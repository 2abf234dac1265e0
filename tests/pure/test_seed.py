"""orchestrator/prepare/seed.py on folders the test writes (no kernel, no make): the files a
patch names, the Kconfig guard, the copy that points the host tools' .cmd files at the new
folders, and the times of patched files (never of a file hard-linked into the tree)."""

import os
from pathlib import Path

from orchestrator.prepare.seed import patched_files, seed_objects, touches_kconfig

PATCH = """Subject: a patch

--- a/kernel/fork.c
+++ b/kernel/fork.c
@@ -1 +1 @@
-a
+b
--- /dev/null
+++ b/mm/new.c
@@ -0,0 +1 @@
+c
"""


def test_patched_files_and_kconfig(tmp_path: Path) -> None:
    p = tmp_path / "p.patch"
    p.write_text(PATCH)
    assert patched_files([p]) == ["kernel/fork.c", "mm/new.c"]
    assert not touches_kconfig([p])
    k = tmp_path / "k.patch"
    k.write_text(PATCH.replace("mm/new.c", "mm/Kconfig"))
    assert touches_kconfig([p, k])


def test_seed_copies_repoints_and_touches(tmp_path: Path) -> None:
    old_src, new_src = tmp_path / "src" / "aaaa", tmp_path / "src" / "bbbb"
    seed = old_src / "o-1111"
    (seed / "tools/objtool").mkdir(parents=True)
    (seed / "kernel").mkdir()
    (seed / "kernel/fork.o").write_bytes(b"\0obj")
    (seed / "tools/objtool/.check.o.cmd").write_text(
        f"cmd_{seed}/tools/objtool/check.o := gcc -I{old_src}/tools/include "
        f"../../o-1111/tools/objtool/libsubcmd/include/subcmd/parse-options.h\n")
    (new_src / "kernel").mkdir(parents=True)
    tree_file = tmp_path / "tree-fork.c"
    tree_file.write_text("tree")
    os.link(tree_file, new_src / "kernel/other.c")  # a hard link into the unpacked tree
    (new_src / "kernel/fork.c").write_text("patched")
    old = 1_000_000_000
    for f in (new_src / "kernel/fork.c", tree_file):
        os.utime(f, (old, old))
    p = tmp_path / "p.patch"
    p.write_text(PATCH.replace("mm/new.c", "kernel/other.c"))
    obj = new_src / "o-2222"
    assert seed_objects(seed, obj, new_src, [p]) == 1
    assert (obj / "kernel/fork.o").read_bytes() == b"\0obj"
    text = (obj / "tools/objtool/.check.o.cmd").read_text()
    assert str(seed) not in text and str(old_src) not in text and "o-1111" not in text
    assert f"cmd_{obj}/tools/objtool/check.o" in text and f"-I{new_src}/tools/include" in text
    assert "../../o-2222/tools/objtool/libsubcmd" in text
    assert (new_src / "kernel/fork.c").stat().st_mtime > old  # newer than every copied object
    assert tree_file.stat().st_mtime == old  # the tree's file keeps its time
    assert not obj.with_name("o-2222.partial").exists()
    assert "o-1111" in (seed / "tools/objtool/.check.o.cmd").read_text()  # the seed is only read
