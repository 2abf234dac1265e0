"""A local git repository of twelve commits on the cached Debian 6.12 tree, one of them the
planted leak (tests/planted/leak-vma-on-anon-vma-fork-failure.patch), for the bisection test.

Commit 1 is the whole tree; commits 2..12 each append a comment line to one .c file, except
commit PLANTED_AT, which applies the planted patch. Author, committer and dates are fixed, so the
commit ids are the same on every run: the kernels forkdiff builds for them are cached by commit,
and the bisection's persistent build folder (keyed by the root commit) is reused from run to run.

Making the twelve commits takes minutes (git hashes and compresses 1.7 GB), so it is done once:
the repository's objects are kept, bare, in the cache (test-fixtures/, keyed by the tree and
this recipe), and each test clones it (--shared: no copy of the objects) into a temp folder,
where git checks the working tree out. The working tree is a plain copy, never hard links to
the cached tree: a link changes the cached files' ctime, which makes a concurrent `tar` of the
tree (a kernel build's source copy) fail with "file changed as we read it"."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PLANTED = REPO / "tests" / "planted" / "leak-vma-on-anon-vma-fork-failure.patch"
PLANTED_AT = 8  # 1-based: the commit that adds the bug
HARMLESS = ("mm/mmap.c", "kernel/exit.c", "mm/memory.c", "kernel/signal.c", "mm/mprotect.c",
            "fs/exec.c", "kernel/sys.c", "mm/mremap.c", "kernel/pid.c", "mm/util.c")
ENV = {"GIT_AUTHOR_NAME": "forkdiff tests", "GIT_AUTHOR_EMAIL": "tests@forkdiff.invalid",
       "GIT_COMMITTER_NAME": "forkdiff tests", "GIT_COMMITTER_EMAIL": "tests@forkdiff.invalid",
       "GIT_AUTHOR_DATE": "2026-01-01T00:00:00Z", "GIT_COMMITTER_DATE": "2026-01-01T00:00:00Z",
       "GIT_CONFIG_NOSYSTEM": "1", "HOME": "/nonexistent"}


def git(repo: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")} | ENV
    return subprocess.run(["git", "-C", str(repo), "-c", "init.defaultBranch=main",
                           "-c", "core.looseCompression=1", *args], env=env, check=True,
                          capture_output=True, text=True).stdout.strip()


def _own(path: Path) -> None:
    """Replace a hard-linked file by a private copy before it is written."""
    data = path.read_bytes()
    mode = path.stat().st_mode
    path.unlink()
    path.write_bytes(data)
    path.chmod(mode | 0o200)


def populate(tree: Path, dest: Path) -> None:
    subprocess.run(["cp", "-a", str(tree), str(dest)], check=True, capture_output=True)
    for name in os.listdir(dest):  # the cache's own markers are no part of the tree
        if name.startswith(".forkdiff") or name == "LAST_USED":
            (dest / name).unlink()
    for root, _dirs, _files in os.walk(dest):  # new folders of our own: writable for git
        os.chmod(root, 0o755)


def make_repo(tree: Path, dest: Path) -> list[str]:
    """Build the repository in `dest` (must not exist); the twelve commit ids, oldest first."""
    populate(tree, dest)
    git(dest, "init", "-q")
    git(dest, "add", "-A", "-f")
    git(dest, "commit", "-q", "-m", "Linux 6.12 as Debian's linux-source-6.12 ships it")
    commits = [git(dest, "rev-parse", "HEAD")]
    harmless = iter(HARMLESS)
    for n in range(2, 13):
        if n == PLANTED_AT:
            _own(dest / "kernel/fork.c")
            subprocess.run(["patch", "-p1", "--batch", "-d", str(dest), "-i", str(PLANTED)],
                           check=True, capture_output=True)
            msg = "fork: leak the new VMA when anon_vma_fork() fails (forkdiff planted bug)"
        else:
            f = dest / next(harmless)
            _own(f)
            with open(f, "a") as fh:
                fh.write(f"/* forkdiff bisect test: harmless commit {n} */\n")
            msg = f"{f.relative_to(dest)}: comment only (forkdiff bisect test, commit {n})"
        git(dest, "commit", "-q", "-a", "-m", msg)
        commits.append(git(dest, "rev-parse", "HEAD"))
    return commits


RECIPE = "1"  # bump when make_repo changes


def cached_repo(tree: Path) -> Path:
    """The bare repository of make_repo(tree) in the cache, made once (under a lock)."""
    from orchestrator.cache import cache_path, locked

    key = hashlib.sha256(f"{RECIPE}:{tree.resolve()}:{(tree / 'Makefile').stat().st_size}".encode()
                         ).hexdigest()[:16]
    bare = cache_path("test-fixtures") / f"bisect-repo-{key}.git"
    with locked(f"test-fixture-bisect-{key}"):
        if not (bare / "forkdiff-complete").is_file():
            work = bare.with_name(bare.name + ".work")
            shutil.rmtree(work, ignore_errors=True)
            shutil.rmtree(bare, ignore_errors=True)
            make_repo(tree, work)
            (work / ".git").rename(bare)
            git(bare, "config", "core.bare", "true")
            shutil.rmtree(work)
            (bare / "forkdiff-complete").write_text("ok\n")
    return bare


def clone(tree: Path, dest: Path) -> list[str]:
    """A working clone of the cached repository in `dest`: the twelve commit ids, oldest first."""
    bare = cached_repo(tree)
    subprocess.run(["git", "clone", "-q", "--shared", str(bare), str(dest)], check=True,
                   capture_output=True, env={k: v for k, v in os.environ.items()
                                             if not k.startswith("GIT_")} | ENV)
    return git(dest, "rev-list", "--reverse", "HEAD").split()
