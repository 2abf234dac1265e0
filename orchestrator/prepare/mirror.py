"""An incremental kernel build of a user's tree for bisection: one persistent copy of the tree and
one persistent out-of-tree build folder per tree, in the cache, never in the tree.

    bisect/<mirror key>/src/             the tree as it is now, synced file by file (no .git)
    bisect/<mirror key>/src/o-<profile>/ the build folder (O=), a child of the copy as in
                                         orchestrator/prepare/kernel.py, so compiler command lines
                                         match the other builds' and ccache hits across them

`git bisect` checks a commit out in the user's tree; sync() then reads only the files whose
size, mode or modification time changed since the last sync, copies those whose content differs
(stamped with the time of the copy, so make sees them newer than the objects of the step
before, whatever time the tree's file has) and removes the files the commit does not have. make
then rebuilds only what changed. The mirror key is the tree's first commit (every commit of one history has
the same root, so a bisection keeps its folder from step to step and run to run) or, outside
git, its path.

The kernel is recorded in kernels/<key> with the key build_kernel gives the tree's identity (its
commit and uncommitted diff, orchestrator/prepare/tree.py), so a step seen before costs no build
at all; its `build` link points at the persistent folder, which the next step rebuilds."""

from __future__ import annotations

import filecmp
import hashlib
import json
import os
import shutil
import stat
import time
from pathlib import Path

from ..cache import atomic_write, cache_path, locked, mark_used
from ..errors import ForkdiffError
from . import variants
from .gitbase import git, is_git_checkout
from .kconfig import ARCH, profile_fragments
from .kernel import BuiltKernel, _Build, check_build_tools
from .tree import KernelTree, validate_tree
from .treefacts import makefile_version

KEEP_TOP = ("o-", ".forkdiff")  # the mirror's own entries sync() never removes


def mirror_key(tree: Path) -> str:
    """The tree's root commit(s) when it is a git checkout, else its path."""
    ident = str(tree.resolve())
    if is_git_checkout(tree):
        roots = git(tree, "rev-list", "--max-parents=0", "HEAD").stdout.split()
        if roots:
            ident = "git-root:" + ",".join(sorted(roots))
    return hashlib.sha256(ident.encode()).hexdigest()[:16]


def tree_identity(tree: Path) -> str:
    """git:<HEAD>:<hash of `git diff HEAD`> (tree.py's format), read without taking git's index
    lock; outside git a walk of paths, sizes and times (tree.py)."""
    if is_git_checkout(tree):
        head = git(tree, "rev-parse", "HEAD")
        diff = git(tree, "diff", "--no-ext-diff", "HEAD")
        if head.returncode == 0 and diff.returncode == 0:
            return f"git:{head.stdout.strip()}:{hashlib.sha256(diff.stdout.encode()).hexdigest()[:16]}"
    from .tree import _user_tree_identity

    return _user_tree_identity(tree)


STATE = ".forkdiff-sync.json"  # the source's (type, size, mtime) of every file at the last sync


def _sig(st: os.stat_result) -> list:
    return [stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_size, st.st_mtime_ns]


def _same_content(src: Path, dest: Path, st: os.stat_result) -> bool:
    """dest already holds src's content (a file or a link's target, and its mode)."""
    try:
        dt = os.lstat(dest)
    except FileNotFoundError:
        return False
    if stat.S_IFMT(dt.st_mode) != stat.S_IFMT(st.st_mode):
        return False
    if stat.S_ISLNK(st.st_mode):
        return os.readlink(src) == os.readlink(dest)
    if dt.st_size != st.st_size or not filecmp.cmp(src, dest, shallow=False):
        return False
    if stat.S_IMODE(dt.st_mode) != stat.S_IMODE(st.st_mode) | stat.S_IWUSR:
        os.chmod(dest, stat.S_IMODE(st.st_mode) | stat.S_IWUSR)
    return True


def _copy(src: Path, dest: Path, st: os.stat_result) -> None:
    """Copy src over dest; the copy's mtime is now, so that make rebuilds what depends on it
    whatever src's own time says (a tree unpacked from an older tarball has older times)."""
    if dest.is_symlink() or dest.exists():
        if dest.is_dir() and not dest.is_symlink():
            shutil.rmtree(dest)
        else:
            dest.unlink()
    if stat.S_ISLNK(st.st_mode):
        os.symlink(os.readlink(src), dest)
    else:
        shutil.copyfile(src, dest)
        os.chmod(dest, stat.S_IMODE(st.st_mode) | stat.S_IWUSR)


def sync(src: Path, dest: Path) -> dict:
    """Make dest hold src's files (without .git), src only read. A file whose type, mode, size
    and mtime are those recorded at the last sync is not read; any other is compared with dest's
    copy and copied (with a new mtime) only when its content differs, so a fresh checkout of the
    same commit rebuilds nothing and a changed file always rebuilds. Files src lacks are
    removed (except dest's own o-*/.forkdiff* entries)."""
    t0 = time.monotonic()
    copied = removed = read = 0
    dest.mkdir(parents=True, exist_ok=True)
    state_file = dest / STATE
    try:
        old = json.loads(state_file.read_text())
    except (OSError, ValueError):
        old = {}
    new: dict[str, list] = {}
    for root, dirs, files in os.walk(src):
        rel = os.path.relpath(root, src)
        droot = dest if rel == "." else dest / rel
        if rel == ".":
            dirs[:] = [d for d in dirs if d != ".git"]
            files = [f for f in files if f != ".git"]
        for d in list(dirs):
            if (Path(root) / d).is_symlink():  # a link to a folder: copied as a link, not walked
                dirs.remove(d)
                files.append(d)
        want = set(dirs) | set(files)
        for entry in list(os.scandir(droot)):
            if entry.name in want or (rel == "." and entry.name.startswith(KEEP_TOP)):
                continue
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
            removed += 1
        for d in dirs:
            dp = droot / d
            if dp.is_symlink() or (dp.exists() and not dp.is_dir()):
                dp.unlink()
            dp.mkdir(exist_ok=True)
        for f in files:
            sp, dp = Path(root) / f, droot / f
            st = os.lstat(sp)
            key = f if rel == "." else f"{rel}/{f}"
            new[key] = sig = _sig(st)
            if old.get(key) == sig and os.path.lexists(dp):
                continue
            read += 1
            if not _same_content(sp, dp, st):
                _copy(sp, dp, st)
                copied += 1
    atomic_write(state_file, json.dumps(new))
    return {"copied": copied, "removed": removed, "compared": read,
            "seconds": round(time.monotonic() - t0, 1)}


class Mirror:
    """The persistent copy of one user tree and its incremental builds."""

    def __init__(self, tree: Path):
        self.tree = tree.resolve()
        validate_tree(self.tree)
        self.key = mirror_key(self.tree)
        self.root = cache_path("bisect", self.key)
        self.src = self.root / "src"

    def lock(self):
        return locked(f"bisect-{self.key}")

    def refresh(self) -> tuple[KernelTree, dict]:
        """Sync the tree into the mirror (hold lock()): the KernelTree a run uses, whose
        identity is the user tree's, and the sync's figures."""
        identity = tree_identity(self.tree)
        mark_used(self.root)
        figures = sync(self.tree, self.src)
        return KernelTree(path=self.src, identity=identity, version=makefile_version(self.src),
                          is_default=False), figures

    def build(self, kt: KernelTree, variant: str, profile: str, progress: bool = True) -> BuiltKernel:
        """The kernel of the mirror as it is now (refresh() first), from the cache when this
        identity was built before, else by make in the persistent build folder."""
        check_build_tools()
        b = _Build(variant, profile, kt, [], profile_fragments(profile), progress, variants.TREE)
        with locked(f"kernel-{b.key}"):
            manifest = b.cached()
            if manifest is not None:
                return b.result(manifest)
            b.src, b.obj = self.src, self.src / f"o-{profile}"
            b.start_log(f"forkdiff incremental kernel build {b.label} key={b.key} "
                             f"tree={self.tree} ({kt.identity}) in {b.obj}\n")
            b.configure()  # once per build folder and fragments (tinyconfig + the profile's fragments)
            # a commit may add or drop Kconfig symbols: resolved with their defaults, never a
            # prompt (syncconfig would ask on a terminal, and git bisect run has one)
            b.run(["make", f"ARCH={ARCH}", f"O={b.obj}", "olddefconfig"], "olddefconfig")
            b.compile()
            manifest = b.record(time.monotonic() - b.t0)
            b.say(f"done: {b.bzimage} ({manifest['release']})")
            return b.result(manifest)


def check_outside(out: Path, tree: Path) -> None:
    """A results folder inside the user's tree would be a write into it: refused."""
    o, t = out.resolve(), tree.resolve()
    if o == t or t in o.parents:
        raise ForkdiffError(f"results folder {out} is inside the kernel tree {tree}",
                            "give --out a folder outside the tree (the default is in the cache)")
