"""The machine's apt sources, read only: which Debian mirror it uses. Parses the one-line format
(/etc/apt/sources.list, sources.list.d/*.list) and the deb822 format (sources.list.d/*.sources);
other files in sources.list.d (e.g. *.disabled, *.save) are ignored, as apt ignores them.

The main Debian archive entry is the `deb` entry whose suites include the system's release
codename itself (e.g. "bookworm"), not only bookworm-security or bookworm-updates; its URI is
the mirror forkdiff asks for another suite (orchestrator/prepare/debsrc.py)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import ForkdiffError


@dataclass(frozen=True)
class Source:
    types: tuple[str, ...]  # "deb", "deb-src"
    uris: tuple[str, ...]
    suites: tuple[str, ...]
    components: tuple[str, ...]
    options: tuple[tuple[str, str], ...] = ()  # lower-cased name -> value, e.g. ("signed-by", path)
    origin: str = ""  # "<file>:<line>"

    def option(self, name: str) -> str | None:
        return dict(self.options).get(name.lower())


_ONE_LINE = re.compile(r"^(deb|deb-src)\s+(?:\[([^\]]*)\]\s+)?(cdrom:\[[^\]]*\]/?|\S+)\s+(\S+)(?:\s+(.*))?$")
NETWORK = ("http://", "https://", "mirror+http://", "mirror+https://", "tor+http://", "tor+https://")


def parse_one_line(text: str, name: str = "sources.list") -> list[Source]:
    out = []
    for no, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        m = _ONE_LINE.match(line)
        if not m:
            continue  # apt would complain; we only look for a mirror
        opts = tuple((k.strip().lower(), v.strip()) for k, _, v in
                     (o.partition("=") for o in (m.group(2) or "").split()) if k.strip())
        out.append(Source((m.group(1),), (m.group(3),), (m.group(4),),
                          tuple((m.group(5) or "").split()), opts, f"{name}:{no}"))
    return out


def parse_deb822(text: str, name: str = "x.sources") -> list[Source]:
    """Stanzas separated by blank lines; `Field: value` with continuation lines starting with
    whitespace; '#' lines are comments. A stanza with `Enabled: no` is skipped."""
    out = []
    stanzas: list[tuple[int, dict[str, str]]] = []
    fields: dict[str, str] = {}
    start, last = 0, None
    for no, raw in enumerate(text.splitlines() + [""], 1):
        if raw.startswith("#"):
            continue
        if not raw.strip():
            if fields:
                stanzas.append((start, fields))
            fields, last = {}, None
            continue
        if raw[0] in " \t" and last:
            fields[last] += " " + raw.strip()
            continue
        key, sep, value = raw.partition(":")
        if not sep:
            continue
        if not fields:
            start = no
        last = key.strip().lower()
        fields[last] = value.strip()
    for no, f in stanzas:
        if f.get("enabled", "yes").lower() == "no":
            continue
        known = ("types", "uris", "suites", "components", "enabled")
        opts = tuple((k, v) for k, v in f.items() if k not in known)
        out.append(Source(tuple(f.get("types", "").split()), tuple(f.get("uris", "").split()),
                          tuple(f.get("suites", "").split()), tuple(f.get("components", "").split()),
                          opts, f"{name}:{no}"))
    return out


def read_sources(etc_apt: Path = Path("/etc/apt")) -> list[Source]:
    """Every entry of sources.list and sources.list.d/*.list and *.sources, in apt's order."""
    out = []
    main = etc_apt / "sources.list"
    if main.is_file():
        out += parse_one_line(main.read_text(errors="replace"), str(main))
    parts = etc_apt / "sources.list.d"
    for f in sorted(parts.iterdir()) if parts.is_dir() else []:
        if f.suffix == ".list":
            out += parse_one_line(f.read_text(errors="replace"), str(f))
        elif f.suffix == ".sources":
            out += parse_deb822(f.read_text(errors="replace"), str(f))
    return out


def release_codename(os_release: Path = Path("/etc/os-release")) -> str:
    try:
        text = os_release.read_text()
    except OSError:
        text = ""
    m = re.search(r"^VERSION_CODENAME=\"?([a-z]+)\"?$", text, re.M)
    if not m:
        raise ForkdiffError(f"cannot tell this system's Debian release from {os_release}",
                            "fetching a Debian source package needs a Debian system with apt")
    return m.group(1)


def main_archive(sources: list[Source], release: str) -> Source:
    """The `deb` entry whose suites include `release` itself (the main archive, not -security),
    with a network URI (not a CD-ROM or a local folder)."""
    for s in sources:
        if "deb" in s.types and release in s.suites and s.uris and s.uris[0].startswith(NETWORK):
            return s
    seen = "; ".join(f"{' '.join(s.uris)} {' '.join(s.suites)} ({s.origin})" for s in sources) or "none"
    raise ForkdiffError(f"no apt source for the Debian archive of this release ({release}) "
                        f"in /etc/apt (entries: {seen})",
                        f"add the Debian mirror for {release} to /etc/apt/sources.list(.d), or give "
                        "KERNEL_TREE=/path/to/an/unpacked/tree")
