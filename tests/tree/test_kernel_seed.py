"""A kernel with an extra patch starts from the objects of the same kernel without it
(orchestrator/prepare/seed.py): only the file the patch touches is compiled again (and the
version stamp), objtool is not rebuilt, and the object is the one a compile from scratch gives.

Real parts: the 6.12 patched/faults kernel that `make test` builds before these tests, a real
make in a real source copy. The patch changes a comment only, with a tag unique to this run so
that its kernel is never cached; that kernel and its source copy are removed afterwards."""

import re
import shutil
import uuid
from pathlib import Path

from orchestrator.cache import cache_path
from orchestrator.prepare.kernel import build_kernel

REPO = Path(__file__).resolve().parents[2]
COMMENT = REPO / "tests" / "planted" / "comment-only.patch"
# what every build compiles again whatever changed: the version stamps, kallsyms' tables of
# the link passes and the boot image around the new vmlinux
EVERY_LINK = ("init/version.o", "init/version-timestamp.o", ".tmp_vmlinux", "arch/x86/boot/")


def test_a_patched_kernel_starts_from_the_unpatched_objects(tmp_path: Path) -> None:
    base = build_kernel("patched", "faults", progress=False)
    tag = uuid.uuid4().hex[:8]
    patch = tmp_path / f"seed-{tag}.patch"
    patch.write_text(COMMENT.read_text().replace("+\t\t * Link the VMA into the MT.",
                                                 f"+\t\t * Link the VMA into the MT ({tag})."))
    assert tag in patch.read_text()
    k = build_kernel("patched", "faults", patches=[patch], progress=False)
    try:
        assert k.build_dir != base.build_dir and k.build_dir.parent != base.build_dir.parent
        log = k.log.read_text()
        assert "tinyconfig" not in log  # configured by the copy, not from scratch
        compiled = set(re.findall(r"^\s+(?:CC|AS)\s+(\S+\.o)$", log, re.M))
        assert {o for o in compiled if not o.startswith(EVERY_LINK)} == {"kernel/fork.o"}, compiled
        # a comment that keeps every line where it was: the object of a compile from scratch
        # is the unpatched one, byte for byte
        assert (k.build_dir / "kernel/fork.o").read_bytes() == (base.build_dir / "kernel/fork.o").read_bytes()
        objtool = "tools/objtool/objtool"
        assert (k.build_dir / objtool).stat().st_mtime == (base.build_dir / objtool).stat().st_mtime
        for cmd in (k.build_dir / "tools").rglob("*.cmd"):
            text = cmd.read_text(errors="replace")
            assert base.build_dir.name not in text and str(base.build_dir.parent) not in text, cmd
        assert k.release == base.release and k.bzimage.stat().st_size > 1_000_000
    finally:
        shutil.rmtree(k.build_dir.parent, ignore_errors=True)
        shutil.rmtree(cache_path("kernels") / k.manifest["key"], ignore_errors=True)


def test_another_variant_starts_from_the_objects_of_the_tree_as_it_is(tmp_path: Path) -> None:
    """A baseline kernel (here: the tree + a comment patch, a key nobody built) starts from the
    patched kernel's objects (the tree as it is, the same .config): what the patch touches and
    what the release string reaches are compiled again, and the kernel says it is the baseline."""
    from orchestrator.cache import locked
    from orchestrator.prepare import kernel
    from orchestrator.prepare.kconfig import profile_fragments

    base = build_kernel("patched", "faults", progress=False)
    tag = uuid.uuid4().hex[:8]
    patch = tmp_path / f"seed-{tag}.patch"
    patch.write_text(COMMENT.read_text().replace("+\t\t * Link the VMA into the MT.",
                                                 f"+\t\t * Link the VMA into the MT ({tag})."))
    b = kernel._Build("baseline", "faults", base.tree, [patch], profile_fragments("faults"), False)
    seed = b.seed()
    assert seed is not None and seed[0].key == base.manifest["key"] and seed[1] == [patch]
    with locked(f"kernel-{b.key}"):
        manifest = kernel._make(b)
    try:
        log = b.log.read_text()
        assert "tinyconfig" not in log
        compiled = set(re.findall(r"^\s+(?:CC|AS)\s+(\S+\.o)$", log, re.M))
        # the objects whose recorded dependencies hold the release string's header
        release_users = {str(cmd.relative_to(base.build_dir).with_name(cmd.name[1:-4]))
                         for cmd in base.build_dir.rglob(".*.o.cmd")
                         if "include/generated/utsrelease.h" in cmd.read_text(errors="replace")}
        assert "kernel/fork.o" not in release_users and release_users
        assert {o for o in compiled if not o.startswith(EVERY_LINK)} == \
            {"kernel/fork.o"} | {o for o in release_users if not o.startswith(EVERY_LINK)}, compiled
        assert (b.obj / "kernel/fork.o").read_bytes() == (base.build_dir / "kernel/fork.o").read_bytes()
        assert manifest["release"].endswith("-baseline-faults") and manifest["release"] != base.release
        assert (b.obj / "include/config/kernel.release").read_text().strip() == manifest["release"]
        assert manifest["release"].encode() in (b.obj / "vmlinux").read_bytes()
    finally:
        shutil.rmtree(b.src, ignore_errors=True)
        shutil.rmtree(b.kdir, ignore_errors=True)


def test_a_kernel_only_looked_up_leaves_no_folder(tmp_path: Path) -> None:
    """The seed search makes a build description of every kernel with fewer patches to look it
    up; that made an empty kernels/<key> for each one never built (47 in one cold make test)."""
    from orchestrator.prepare.kconfig import profile_fragments
    from orchestrator.prepare.kernel import _Build
    from orchestrator.prepare.tree import default_tree

    patch = tmp_path / f"lookup-{uuid.uuid4().hex[:8]}.patch"
    patch.write_text(patch.name)
    b = _Build("patched", "faults", default_tree(), [patch], profile_fragments("faults"), False)
    assert b.cached() is None and not b.kdir.exists()
