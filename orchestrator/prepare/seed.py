"""Start a kernel build's object folder from an earlier build's (an incremental build).

A kernel with patches (a planted bug, a series patch, PATCHES=) differs from the kernel of the
same tree, variant and profile without them only in the files the patches touch. Copying that
build's object folder (O=, about 165 MB and 3,800 files for 6.12 faults) and running make there
recompiles those files and what depends on them, and links again, instead of looking every
object up in ccache and configuring from tinyconfig.

Why it is exact: Kbuild rebuilds an object whose source, headers (from the -MMD dependency
lists in the .cmd files) or command line changed since the object was made. Every file that
differs between the two source copies is one the extra patches touch (both copies are the same
tree with the same earlier patches); their mtimes are set to now after the copy, so they are
newer than every copied object. The object folder sits directly in its source copy, so Kbuild
names sources relative to it (`../kernel/fork.c`) and the copied dependency lists hold in the
new source copy (the host tools' .cmd files, which hold absolute paths, are pointed at the new
folders). A patch that touches a Kconfig file is not seeded (the .config could differ):
it configures from scratch, as every build did before.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from ..errors import ForkdiffError

_TARGET = re.compile(r"^(?:\+\+\+|---) (?:[ab]/)?(\S+)")


def patched_files(patches: Sequence[Path]) -> list[str]:
    """Paths (relative to the tree) that the unified diffs name, old and new side."""
    files: list[str] = []
    for patch in patches:
        for line in Path(patch).read_text(errors="replace").splitlines():
            m = _TARGET.match(line)
            if m and m.group(1) != "/dev/null" and m.group(1) not in files:
                files.append(m.group(1))
    return files


def touches_kconfig(patches: Sequence[Path]) -> bool:
    return any(Path(f).name.startswith("Kconfig") for f in patched_files(patches))


def _repoint(tree: Path, old_obj: Path, new_obj: Path, old_src: Path, new_src: Path) -> None:
    """The host tools' build (tools/objtool: tools/build) records absolute paths in its .cmd
    files; left pointing at the seed's folders, the commands would differ, objtool would be
    built again and, being a prerequisite of every object, everything recompiled."""
    # absolute paths, and the object folder's name in paths relative to the source copy
    # (../../o-<key>/tools/objtool/libsubcmd/include/...)
    pairs = [(str(old_obj).encode(), str(new_obj).encode()), (str(old_src).encode(), str(new_src).encode()),
             (f"/{old_obj.name}/".encode(), f"/{new_obj.name}/".encode())]
    for path in (tree / "tools").rglob("*.cmd"):
        data = path.read_bytes()
        if not any(a in data for a, _ in pairs):
            continue
        for a, b in pairs:
            data = data.replace(a, b)
        path.write_bytes(data)


def seed_objects(seed_obj: Path, obj: Path, src: Path, extra: Sequence[Path]) -> int:
    """Copy seed_obj to obj (which must not exist; via obj.partial, renamed when complete) and
    make the files the extra patches touch in src newer than every copied object. Returns how
    many files were touched."""
    partial = obj.with_name(obj.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    res = subprocess.run(["cp", "-a", str(seed_obj), str(partial)], capture_output=True, text=True)
    if res.returncode != 0:
        shutil.rmtree(partial, ignore_errors=True)
        raise ForkdiffError(f"could not copy the object folder {seed_obj}: {res.stderr.strip()[-300:]}",
                            "free disk space in the cache, or remove the cache's src/ folder")
    _repoint(partial, seed_obj, obj, seed_obj.parent, src)
    partial.rename(obj)
    touched = 0
    for rel in patched_files(extra):
        path = src / rel
        # a patched file is a new inode (patch writes a new file): never a hard link into the
        # unpacked tree, whose files must keep their times
        if path.is_file() and path.stat().st_nlink == 1:
            os.utime(path)
            touched += 1
    return touched
