"""The instruction-counting QEMU plugin (orchestrator/data/insncount.c): built on first use
against the qemu-plugin.h of the QEMU that runs it, into the cache.

QEMU's plugin header is not in any Debian binary package: it is in the `qemu` source package.
It is fetched once, with apt under a private state folder (as debsrc.py fetches kernel source
packages: nothing of the system's apt state is read or written but its trusted keys and the
mirror URIs of its own Debian entries), from `deb-src` lines for this machine's configured
Debian archive entries of its release. Only the header is kept:

    cache/apt/qemu-src/                    the private apt state (lists, sources.list)
    cache/qemu-plugin/header-<version>/qemu-plugin.h
    cache/qemu-plugin/<key>/insncount.so   key: plugin source + QEMU version + header + gcc
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

from ..cache import atomic_write, cache_path, locked, mark_used, sha256_file, sha256_text
from ..errors import ForkdiffError
from . import aptsources
from .debsrc import Apt

PLUGIN_SOURCE = Path(__file__).resolve().parent.parent / "data" / "insncount.c"
QEMU_PACKAGE = "qemu-system-x86"
HEADER_IN_TARBALL = "*/include/qemu/qemu-plugin.h"


def _say(msg: str) -> None:
    print(f"forkdiff: {msg}", file=sys.stderr, flush=True)


def qemu_source_version() -> str:
    """The version of the `qemu` source package this machine's qemu-system-x86 was built from
    (e.g. 1:7.2+dfsg-7+deb12u18: the binary's own version may carry a +bN binNMU suffix)."""
    try:
        res = subprocess.run(["dpkg-query", "-W", "-f=${source:Package} ${source:Version}",
                              QEMU_PACKAGE], capture_output=True, text=True)
    except FileNotFoundError:
        raise ForkdiffError("dpkg-query is missing: the QEMU plugin needs a Debian system",
                            "run forkdiff on Debian 12 with qemu-system-x86") from None
    parts = res.stdout.split()
    if res.returncode != 0 or len(parts) != 2:
        raise ForkdiffError(f"{QEMU_PACKAGE} is not installed", "run 'make setup'")
    return parts[1]


class SourceApt(Apt):
    """Apt with deb-src lines for the machine's own Debian archive entries of its release."""

    def __init__(self, root: Path, entries: list[aptsources.Source], release: str):
        super().__init__(release, root, entries[0])
        lines = []
        for e in entries:
            signed = e.option("signed-by")
            opt = f" [signed-by={signed}]" if signed else ""
            suites = [s for s in e.suites if s == release or s.startswith(release + "-")]
            for uri in e.uris:
                lines += [f"deb-src{opt} {uri} {s} main" for s in suites]
        (root / "etc/sources.list").write_text("\n".join(lines) + "\n")

    def source_versions(self, package: str) -> list[str]:
        res = self.run("apt-cache", "showsrc", package)
        return re.findall(r"^Version:\s*(\S+)", res.stdout, re.M)


def _archive_entries(release: str) -> list[aptsources.Source]:
    out = [s for s in aptsources.read_sources()
           if "deb" in s.types and s.uris and s.uris[0].startswith(aptsources.NETWORK)
           and any(x == release or x.startswith(release + "-") for x in s.suites)]
    if not out:
        aptsources.main_archive(aptsources.read_sources(), release)  # raises, listing entries
    return out


def plugin_header(version: str | None = None) -> Path:
    """qemu-plugin.h of the qemu source package `version` (default: the installed QEMU's),
    fetched once into the cache."""
    version = version or qemu_source_version()
    folder = cache_path("qemu-plugin", "header-" + re.sub(r"[^A-Za-z0-9.+-]", "_", version))
    header = folder / "qemu-plugin.h"
    with locked("qemu-plugin-header"):
        if header.is_file():
            return header
        release = aptsources.release_codename()
        apt = SourceApt(cache_path("apt", "qemu-src"), _archive_entries(release), release)
        _say(f"fetching qemu {version}'s source for qemu-plugin.h: apt-get update "
             f"(deb-src, private state in {apt.root})")
        apt.update()
        offered = apt.source_versions("qemu")
        want = version if version in offered else None
        if want is None:
            upstream = version.split(":")[-1].split("+")[0].split("-")[0]
            same = [v for v in offered if v.split(":")[-1].startswith(upstream)]
            if not same:
                raise ForkdiffError(f"the qemu source package {version} is not on the mirror "
                                    f"(offered: {', '.join(offered) or 'none'})",
                                    "check the network and the machine's Debian apt entries")
            want = same[0]
            _say(f"qemu source {version} not offered; using {want} (same upstream {upstream}: "
                 "the plugin API header is upstream's)")
        dl = apt.root / "src"
        shutil.rmtree(dl, ignore_errors=True)
        dl.mkdir(parents=True)
        res = apt.run("apt-get", "-q", "source", "--download-only", f"qemu={want}", cwd=dl)
        tarballs = sorted(dl.glob("qemu_*.orig.tar.*"))
        if res.returncode != 0 or not tarballs:
            raise ForkdiffError(f"apt-get source --download-only qemu={want} failed: "
                                f"{(res.stderr or res.stdout).strip()[-400:]}",
                                "check the network and free space in the cache")
        ex = subprocess.run(["tar", "-xf", str(tarballs[0]), "-O", "--wildcards", HEADER_IN_TARBALL],
                            capture_output=True)
        if ex.returncode != 0 or b"QEMU_PLUGIN_VERSION" not in ex.stdout:
            raise ForkdiffError(f"{tarballs[0].name} holds no include/qemu/qemu-plugin.h",
                                "the QEMU source has no plugin API (QEMU 4.2 or later has)")
        atomic_write(header, ex.stdout)
        atomic_write(folder / "source.json", json.dumps(
            {"package": "qemu", "version": want, "tarball": tarballs[0].name}) + "\n")
        shutil.rmtree(dl, ignore_errors=True)  # the header is what is kept
        return header


def _gcc() -> str:
    res = subprocess.run(["gcc", "--version"], capture_output=True, text=True)
    return res.stdout.splitlines()[0] if res.returncode == 0 and res.stdout else "?"


def _glib_flags() -> list[str]:
    res = subprocess.run(["pkg-config", "--cflags", "glib-2.0"], capture_output=True, text=True)
    if res.returncode != 0:
        raise ForkdiffError("glib-2.0's headers are missing (pkg-config glib-2.0 failed)",
                            "run 'make setup' (libglib2.0-dev)")
    return res.stdout.split()


def plugin_key(version: str | None = None) -> str:
    version = version or qemu_source_version()
    return sha256_text(PLUGIN_SOURCE.read_bytes(), version, _gcc())[:16]


def build_plugin(version: str | None = None) -> Path:
    """The compiled plugin (.so) for the installed QEMU, built once per source + QEMU + gcc."""
    version = version or qemu_source_version()
    key = plugin_key(version)
    folder = cache_path("qemu-plugin", key)
    so = folder / "insncount.so"
    with locked(f"qemu-plugin-{key}"):
        if so.is_file() and (folder / "build.json").is_file():
            mark_used(folder)
            return so
        header = plugin_header(version)
        tmp = folder / ".insncount.so.tmp"
        cmd = ["gcc", "-O2", "-Wall", "-Werror", "-shared", "-fPIC", f"-I{header.parent}",
               *_glib_flags(), "-o", str(tmp), str(PLUGIN_SOURCE)]
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode != 0:
            raise ForkdiffError(f"compiling the QEMU plugin failed: {res.stderr.strip()[-600:]}",
                                "run 'make setup' (build-essential, libglib2.0-dev)")
        tmp.replace(so)
        atomic_write(folder / "build.json", json.dumps(
            {"qemu_source_version": version, "header_sha256": sha256_file(header),
             "source_sha256": sha256_file(PLUGIN_SOURCE), "gcc": _gcc(),
             "command": " ".join(cmd)}, indent=1) + "\n")
        mark_used(folder)
        return so
