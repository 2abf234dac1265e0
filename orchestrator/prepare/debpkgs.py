"""The Debian packages forkdiff needs: one list (orchestrator/data/deb-packages.txt), read by
`forkdiff setup` and by the Makefile's setup target; which are missing (dpkg-query), and
installing those with apt-get (idempotent: nothing to do when all are there)."""

from __future__ import annotations

import importlib.resources
import os
import shutil
import subprocess

from ..errors import ForkdiffError


def packages() -> list[str]:
    text = (importlib.resources.files("orchestrator") / "data" / "deb-packages.txt").read_text()
    out: list[str] = []
    for line in text.splitlines():
        out += line.split("#", 1)[0].split()
    return out


def missing(names: list[str]) -> list[str]:
    """The packages dpkg does not report as installed."""
    if shutil.which("dpkg-query") is None:
        raise ForkdiffError("dpkg-query not found: forkdiff setup installs Debian packages",
                            "on another distribution install the equivalents of "
                            "'forkdiff setup --print' by hand")
    out = []
    for name in names:
        r = subprocess.run(["dpkg-query", "-W", "-f=${Status}", name], capture_output=True, text=True)
        if "install ok installed" not in r.stdout:
            out.append(name)
    return out


def install(names: list[str]) -> None:
    """apt-get update + install --no-install-recommends of `names` (sudo unless root)."""
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in ([*sudo, "apt-get", "update", "-q"],
                [*sudo, "apt-get", "install", "-y", "-q", "--no-install-recommends", *names]):
        r = subprocess.run(cmd, env=env)
        if r.returncode != 0:
            raise ForkdiffError(f"{' '.join(cmd[:4])} ... failed with status {r.returncode}",
                                "run it by hand as root and fix what apt reports")
