"""Kernel source trees: the default (Debian's linux-source-6.12, unpacked into the cache) or a
user's tree, validated and identified. A user's tree is only ever read, never written."""

from __future__ import annotations

import hashlib
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..errors import ForkdiffError
from . import debsrc
from .debsrc import unpack_tarball
from .treefacts import makefile_version as _makefile_version

DEFAULT_PACKAGE = "linux-source-6.12"
DEFAULT_TARBALL = Path("/usr/src/linux-source-6.12.tar.xz")
# Files whose presence makes a folder a kernel tree forkdiff can use.
REQUIRED_FILES = (
    "Makefile",
    "kernel/fork.c",
    "lib/maple_tree.c",
    "scripts/kconfig/merge_config.sh",
    "tools/testing/radix-tree/Makefile",
)


@dataclass(frozen=True)
class KernelTree:
    path: Path
    identity: str  # stable string naming exactly this content (package version, git commit, ...)
    version: str  # kernel version from the top Makefile, e.g. "6.12.57"
    is_default: bool

    @property
    def key(self) -> str:
        return hashlib.sha256(self.identity.encode()).hexdigest()[:16]


def validate_tree(path: Path) -> None:
    if not path.exists():
        raise ForkdiffError(f"kernel tree {path} does not exist",
                            "give KERNEL_TREE=/path/to/linux (a kernel source checkout)")
    if not path.is_dir():
        raise ForkdiffError(f"kernel tree {path} is not a folder",
                            "give KERNEL_TREE=/path/to/linux (a kernel source checkout)")
    missing = [f for f in REQUIRED_FILES if not (path / f).is_file()]
    if missing:
        raise ForkdiffError(f"{path} is not a kernel tree: missing {', '.join(missing)}",
                            "point KERNEL_TREE at the top of a Linux source tree (where MAINTAINERS is)")
    if (path / ".config").exists() or (path / "include/config").exists():
        raise ForkdiffError(f"kernel tree {path} has been configured in place (.config present)",
                            "run 'make mrproper' in it, or give a clean tree: forkdiff builds out of tree (O=)")


def _debian_package_version(package: str) -> str | None:
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package],
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else None


def _user_tree_identity(path: Path) -> str:
    """git commit + hash of the working-tree diff when it is a git checkout; otherwise a hash of
    every file's path, size and mtime (about a second for a full tree)."""
    if (path / ".git").exists():
        try:
            head = subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"],
                                  capture_output=True, text=True, timeout=60, check=True).stdout.strip()
            diff = subprocess.run(["git", "-C", str(path), "diff", "HEAD"],
                                  capture_output=True, timeout=300, check=True).stdout
            return f"git:{head}:{hashlib.sha256(diff).hexdigest()[:16]}"
        except (OSError, subprocess.SubprocessError):
            pass
    h = hashlib.sha256()
    for root, dirs, files in os.walk(path):
        dirs[:] = sorted(d for d in dirs if d != ".git")
        for name in sorted(files):
            p = os.path.join(root, name)
            try:
                st = os.lstat(p)
            except OSError:
                continue
            h.update(f"{os.path.relpath(p, path)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return f"walk:{h.hexdigest()}"


def default_tree() -> KernelTree:
    """Unpack Debian's linux-source-6.12 tarball into the cache (once per package version)."""
    if not DEFAULT_TARBALL.is_file():
        raise ForkdiffError(f"default kernel tree {DEFAULT_TARBALL} is missing",
                            "run 'make setup' (installs linux-source-6.12), or give KERNEL_TREE=/path")
    version = _debian_package_version(DEFAULT_PACKAGE) or f"size{DEFAULT_TARBALL.stat().st_size}"
    dest = unpack_tarball(DEFAULT_TARBALL, DEFAULT_PACKAGE, version)
    return KernelTree(path=dest, identity=f"debian:{DEFAULT_PACKAGE}:{version}",
                      version=_makefile_version(dest), is_default=True)


def debian_tree(spec: debsrc.DebianSpec) -> KernelTree:
    """A Debian source package of any suite (KERNEL_TREE=debian:SUITE:PACKAGE), fetched once."""
    dest, version = debsrc.fetch(spec)
    return KernelTree(path=dest, identity=f"debian:{spec.package}:{version}",
                      version=_makefile_version(dest), is_default=False)


def resolve_tree(path: str | Path | KernelTree | None = None) -> KernelTree:
    """The tree to use: `path` if given, else the default Debian tree (the commands read
    KERNEL_TREE=: orchestrator/cli_env.py). A
    `debian:SUITE:PACKAGE` spec is fetched into the cache (orchestrator/prepare/debsrc.py). A
    KernelTree is already resolved (a series' base-commit, a bisect step's copy): used as it is."""
    if isinstance(path, KernelTree):
        return path
    raw = path if path not in (None, "") else None
    if raw is None:
        tree = default_tree()
        validate_tree(tree.path)
        return tree
    spec = debsrc.parse_spec(str(raw))
    if spec is not None:
        tree = debian_tree(spec)
        validate_tree(tree.path)
        return tree
    p = Path(raw).expanduser().resolve()
    validate_tree(p)
    return KernelTree(path=p, identity=_user_tree_identity(p), version=_makefile_version(p),
                      is_default=False)
