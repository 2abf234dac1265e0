"""KERNEL_TREE=debian:SUITE:PACKAGE: a Debian linux-source package of any suite, fetched once
into the cache with apt under a private state folder (nothing of the system's apt state is
read or written but its trusted keys and the mirror URI of its sources), unpacked into
cache/trees/<package>_<version>/ like the default tree, read-only.

    cache/apt/<suite>/        Dir::State, lists, status, Dir::Cache, sources.list (private)
    cache/trees/debian_<suite>_<package>.json   the version fetched: later runs use it offline
                              (remove it to fetch the suite's newer version)
    cache/trees/<package>_<version>/            the unpacked tree (a-w)
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

from ..cache import atomic_write, cache_path, locked
from ..errors import ForkdiffError
from . import aptsources

SPEC = re.compile(r"^debian:([a-z][a-z0-9.+-]*):([a-z0-9][a-z0-9.+-]+)$")


@dataclass(frozen=True)
class DebianSpec:
    suite: str
    package: str

    @property
    def text(self) -> str:
        return f"debian:{self.suite}:{self.package}"


def parse_spec(raw: str) -> DebianSpec | None:
    """`debian:SUITE:PACKAGE` -> DebianSpec; None for anything not starting with "debian:"
    (a path); a malformed spec is a ForkdiffError."""
    if not raw.startswith("debian:"):
        return None
    m = SPEC.match(raw)
    if not m:
        raise ForkdiffError(f"KERNEL_TREE={raw!r} is not a Debian source package spec",
                            "write debian:SUITE:PACKAGE, e.g. debian:sid:linux-source-7.2 "
                            "or debian:bookworm:linux-source-6.1 (or give a path)")
    return DebianSpec(m.group(1), m.group(2))


class Apt:
    """apt-get/apt-cache with a private state folder for one suite."""

    def __init__(self, suite: str, root: Path, mirror: aptsources.Source):
        self.suite, self.root = suite, root
        for d in ("lists/partial", "cache/archives/partial", "etc", "debs"):
            (root / d).mkdir(parents=True, exist_ok=True)
        (root / "status").touch()
        signed = mirror.option("signed-by")
        opt = f" [signed-by={signed}]" if signed else ""
        (root / "etc/sources.list").write_text(f"deb{opt} {mirror.uris[0]} {suite} main\n")
        self.uri = mirror.uris[0]

    def options(self) -> list[str]:
        r = self.root
        opts = {"Dir::State": r, "Dir::State::Lists": r / "lists", "Dir::State::status": r / "status",
                "Dir::Cache": r / "cache", "Dir::Etc::SourceList": r / "etc/sources.list",
                "Dir::Etc::SourceParts": "/dev/null", "APT::Sandbox::User": "root",
                "Debug::NoLocking": "1"}
        return [a for k, v in opts.items() for a in ("-o", f"{k}={v}")]

    def run(self, tool: str, *args: str, cwd: Path | None = None, timeout: float = 900
            ) -> subprocess.CompletedProcess:
        try:
            return subprocess.run([tool, *self.options(), *args], cwd=cwd, capture_output=True,
                                  text=True, timeout=timeout)
        except FileNotFoundError:
            raise ForkdiffError(f"{tool} is missing", "fetching a Debian package needs apt "
                                "(a Debian system)") from None
        except subprocess.TimeoutExpired:
            raise ForkdiffError(f"{tool} {' '.join(args[:2])} did not finish in {timeout:.0f} s",
                                "check the network and the mirror") from None

    def update(self) -> None:
        res = self.run("apt-get", "-q", "update")
        out = res.stdout + res.stderr
        if re.search(r"does not have a Release file|404\s+Not Found", out):
            shutil.rmtree(self.root, ignore_errors=True)  # our private state for a suite that is not
            raise ForkdiffError(f"unknown Debian suite {self.suite!r}: the mirror {self.uri} has no "
                                f"dists/{self.suite}", "use a suite the mirror has (bookworm, "
                                "trixie, sid, bookworm-backports, ...)")
        offline = re.search(r"Temporary failure resolving|Could not resolve|Could not connect|"
                            r"Network is unreachable|Connection timed out", out)
        if offline or "Failed to fetch" in out or res.returncode != 0:
            what = "no network? " if offline else ""
            tail = " / ".join(ln.strip() for ln in out.splitlines() if ln.startswith(("E:", "W:", "Err")))
            raise ForkdiffError(f"{what}apt-get update for {self.suite} from {self.uri} failed: "
                                f"{tail[-500:] or 'exit ' + str(res.returncode)}",
                                "check the network (fetching needs it once; later runs use the "
                                "cache), or give KERNEL_TREE=/path/to/an/unpacked/tree")

    def candidate(self, package: str) -> str | None:
        res = self.run("apt-cache", "policy", package)
        m = re.search(r"^\s*Candidate:\s*(\S+)", res.stdout, re.M)
        return m.group(1) if m and m.group(1) != "(none)" else None

    def offered(self, pattern: str = "^linux-source-") -> list[str]:
        res = self.run("apt-cache", "search", "--names-only", pattern)
        return sorted(ln.split(" - ", 1)[0].strip() for ln in res.stdout.splitlines() if ln.strip())

    def download(self, package: str, version: str) -> Path:
        dest = self.root / "debs"
        for old in dest.glob("*.deb"):
            old.unlink()
        res = self.run("apt-get", "-q", "download", f"{package}={version}", cwd=dest)
        debs = sorted(dest.glob(f"{package}_*.deb"))
        if res.returncode != 0 or not debs:
            raise ForkdiffError(f"apt-get download {package}={version} failed: "
                                f"{(res.stderr or res.stdout).strip()[-400:]}",
                                "check the network and free space in the cache")
        return debs[0]


def _pin_file(spec: DebianSpec) -> Path:
    return cache_path("trees") / f"debian_{spec.suite}_{spec.package}.json"


def _unpack_deb(deb: Path, package: str, version: str, dest_root: Path) -> Path:
    """dpkg-deb -x, then the /usr/src tarball inside into dest_root/<package>_<version>."""

    work = dest_root / f".{package}_{version}.deb-x"
    subprocess.run(["rm", "-rf", str(work)], check=False)
    work.mkdir(parents=True)
    try:
        res = subprocess.run(["dpkg-deb", "-x", str(deb), str(work)], capture_output=True, text=True)
        if res.returncode != 0:
            raise ForkdiffError(f"dpkg-deb -x {deb.name} failed: {res.stderr.strip()[-300:]}",
                                "check free space in the cache")
        tarballs = sorted((work / "usr/src").glob(f"{package}.tar*"))
        if not tarballs:
            raise ForkdiffError(f"{deb.name} holds no /usr/src/{package}.tar.*",
                                "give a linux-source-X.Y package")
        return unpack_tarball(tarballs[0], package, version)
    finally:
        subprocess.run(["rm", "-rf", str(work)], check=False)


def fetch(spec: DebianSpec, say=lambda m: print(f"forkdiff: {m}", file=sys.stderr, flush=True)
          ) -> tuple[Path, str]:
    """(unpacked tree, package version) for a spec; fetched and unpacked once, under a lock."""
    with locked(f"debian-{spec.suite}-{spec.package}"):
        pin = _pin_file(spec)
        if pin.is_file():
            data = json.loads(pin.read_text())
            tree = Path(data["tree"])
            if (tree / ".forkdiff-unpacked").is_file():
                return tree, data["version"]
        release = aptsources.release_codename()
        mirror = aptsources.main_archive(aptsources.read_sources(), release)
        apt = Apt(spec.suite, cache_path("apt", spec.suite), mirror)
        say(f"fetching {spec.text}: apt-get update of {spec.suite} (private state in {apt.root})")
        apt.update()
        version = apt.candidate(spec.package)
        if version is None:
            offered = apt.offered()
            raise ForkdiffError(f"package {spec.package} not found in Debian {spec.suite}",
                                f"{spec.suite} offers: {', '.join(offered) or 'no linux-source-* package'}")
        say(f"downloading {spec.package} {version}")
        deb = apt.download(spec.package, version)
        tree = _unpack_deb(deb, spec.package, version, cache_path("trees"))
        deb.unlink()  # the unpacked tree is what is kept
        atomic_write(pin, json.dumps({"spec": spec.text, "version": version, "tree": str(tree)}) + "\n")
        return tree, version


def unpack_tarball(tarball: Path, package: str, version: str) -> Path:
    """Unpack a Debian linux-source tarball into cache/trees/<package>_<version>/ (once per
    package version, under a lock), then make it read-only (chmod -R a-w)."""
    dest_root = cache_path("trees")
    dest = dest_root / f"{package}_{version}"
    done = dest / ".forkdiff-unpacked"
    with locked(f"tree-{package}"):
        if not done.exists():
            tmp = dest_root / f".{dest.name}.partial"
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.rmtree(dest, ignore_errors=True)
            tmp.mkdir(parents=True)
            print(f"forkdiff: unpacking {tarball} into {dest_root} (once per package version)",
                  file=sys.stderr, flush=True)
            try:  # tar with xz is several times faster than Python's tarfile here
                subprocess.run(["tar", "-xf", str(tarball), "-C", str(tmp)], check=True,
                               capture_output=True, timeout=1800)
            except (OSError, subprocess.SubprocessError):
                shutil.rmtree(tmp, ignore_errors=True)
                tmp.mkdir(parents=True)
                with tarfile.open(tarball) as tf:
                    tf.extractall(tmp, filter="tar")
            inner = tmp / package
            src = inner if inner.is_dir() else tmp
            src.rename(dest)
            shutil.rmtree(tmp, ignore_errors=True)
            done.write_text(version + "\n")
            subprocess.run(["chmod", "-R", "a-w", str(dest)], check=False)
    return dest
