"""A series' base-commit on a user's git checkout: the tree the series was written for.

When PATCHES= carry a `base-commit:` trailer and the tree is a git checkout, the patches go onto
that commit, exported with `git archive` into the cache (trees/git-<commit>/, read-only, once per
commit), not onto whatever the checkout holds now. The checkout is only read (git runs with
GIT_OPTIONAL_LOCKS=0, so not even its index is refreshed). A checkout without the commit is an
error naming it; a tree that is not a git checkout (the default Debian tree, a tarball) is used
as it is, and the run says the trailer was not used."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

from ..cache import cache_path, locked
from ..errors import ForkdiffError
from .tree import KernelTree
from .treefacts import makefile_version

CLEAN_DIFF = hashlib.sha256(b"").hexdigest()[:16]  # tree.py's identity of a checkout without changes


def git(tree: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """git -C tree ARGS, read-only (no optional locks: the index is not refreshed)."""
    env = dict(os.environ, GIT_OPTIONAL_LOCKS="0")
    return subprocess.run(["git", "-C", str(tree), *args], capture_output=True, text=True,
                          timeout=timeout, env=env, check=False)


def is_git_checkout(tree: Path) -> bool:
    if not (tree / ".git").exists():
        return False
    try:
        return git(tree, "rev-parse", "--is-inside-work-tree").stdout.strip() == "true"
    except (OSError, subprocess.SubprocessError):
        return False


def commit_of(tree: Path, commit: str, source: str) -> str:
    """The full id of `commit` in the checkout, or a ForkdiffError naming what is missing."""
    res = git(tree, "rev-parse", "--verify", "--quiet", f"{commit}^{{commit}}")
    if res.returncode != 0 or not res.stdout.strip():
        raise ForkdiffError(f"base-commit {commit} of {source} is not in the git checkout {tree}",
                            f"fetch it into that checkout (git fetch <remote> {commit}), or give "
                            "KERNEL_TREE= a checkout that has it")
    return res.stdout.strip()


def export_commit(tree: Path, commit: str) -> Path:
    """`git archive` of `commit` unpacked into cache/trees/git-<commit>/ (once, read-only)."""
    dest = cache_path("trees") / f"git-{commit}"
    done = dest / ".forkdiff-unpacked"
    with locked(f"tree-git-{commit[:16]}"):
        if not done.exists():
            tmp = dest.with_name(f".{dest.name}.partial")
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.rmtree(dest, ignore_errors=True)
            tmp.mkdir(parents=True)
            env = dict(os.environ, GIT_OPTIONAL_LOCKS="0")
            arch = subprocess.Popen(["git", "-C", str(tree), "archive", "--format=tar", commit],
                                    stdout=subprocess.PIPE, env=env)
            untar = subprocess.run(["tar", "-C", str(tmp), "-xf", "-"], stdin=arch.stdout,
                                   capture_output=True)
            if arch.stdout:
                arch.stdout.close()
            if arch.wait() != 0 or untar.returncode != 0:
                shutil.rmtree(tmp, ignore_errors=True)
                raise ForkdiffError(f"could not export commit {commit} of {tree}: "
                                    f"{untar.stderr.decode(errors='replace').strip()[-300:]}",
                                    "check free space in the cache")
            tmp.rename(dest)
            done.write_text(commit + "\n")
            subprocess.run(["chmod", "-R", "a-w", str(dest)], check=False)
    return dest


def tree_at_base(tree: str | Path | KernelTree | None, base_commit: str | None, source: str,
                 say=lambda _msg: None) -> str | Path | KernelTree | None:
    """The tree a series goes onto: its base-commit exported from a git checkout when it has one,
    else `tree` unchanged (said through `say` when a base-commit is not used)."""
    if not base_commit or isinstance(tree, KernelTree):
        return tree
    raw = tree if tree not in (None, "") else None
    if raw is None or str(raw).startswith("debian:"):
        say(f"base-commit {base_commit} of {source} not used: the tree is not a git checkout "
            "(the patches go onto the tree as it is)")
        return tree
    path = Path(raw).expanduser().resolve()
    if not is_git_checkout(path):
        say(f"base-commit {base_commit} of {source} not used: {path} is not a git checkout")
        return tree
    full = commit_of(path, base_commit, source)
    head = git(path, "rev-parse", "HEAD").stdout.strip()
    dirty = git(path, "status", "--porcelain", "--untracked-files=no").stdout.strip()
    if head == full and not dirty:
        say(f"base-commit {full[:12]} is the checkout's HEAD: the patches go onto {path}")
        return tree
    dest = export_commit(path, full)
    say(f"base-commit {full[:12]} of {source}: the patches go onto that commit, exported to {dest} "
        f"(the checkout is at {head[:12]}{', with changes' if dirty else ''})")
    return KernelTree(path=dest, identity=f"git:{full}:{CLEAN_DIFF}",
                      version=makefile_version(dest), is_default=False)
