"""Kconfig profiles: fragments in kconfig/, merged over `make ARCH=x86_64 tinyconfig` with the
tree's own scripts/kconfig/merge_config.sh, then checked: every option a fragment asks for must be
in the final .config (as KUnit's kunit_tool checks), or the build stops listing each dropped one.

Version annotations: an option line may end with `# since X.Y` (the option exists, or is
wanted, from kernel X.Y on) or `# until X.Y` (only before X.Y). On a tree outside that range
the option is left out of the merge and out of the check; everywhere else it is requested and
checked like any other. Options without an annotation are required on every tree. What is merged
is the effective fragment for the tree's version (effective_text), written next to the build."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from simulator.runconfig import OPTIONS

from .. import resources
from ..cache import sha256_file
from ..errors import ForkdiffError
from . import kconfig_needs

KCONFIG_DIR = resources.data_dir("kconfig")

# Profile -> fragment names (kconfig/<name>.config), merged in this order.
PROFILES: dict[str, tuple[str, ...]] = {
    "faults": ("base", "faults"),
    "perf": ("base", "perf"),
    # the faults machine with DEBUG_VM's checks, for DEBUG_VM=1 (maps, faults, counts)
    "debug": ("base", "faults", "debug"),
}

_SET = re.compile(r"^(CONFIG_[A-Za-z0-9_]+)=(.*)$")
_UNSET = re.compile(r"^# (CONFIG_[A-Za-z0-9_]+) is not set\s*$")
# "CONFIG_X=y  # since 6.4" / "# CONFIG_X is not set  # until 6.8"
_ANNOTATION = re.compile(r"^(.*?)\s+#\s*(since|until)\s+(\d+)\.(\d+)\s*$")
Version = tuple[int, ...]


@dataclass(frozen=True)
class Request:
    """One option a fragment asks for: value is 'y', 'm', 'n' (is not set), or a literal."""

    option: str
    value: str
    source: str  # "<fragment file>:<line>"
    since: Version = ()  # requested on trees >= since (empty: every tree)
    until: Version = ()  # requested on trees < until (empty: every tree)

    def applies(self, version: Version | None) -> bool:
        """Whether a tree of this version gets the request (None: no version known, all do)."""
        if version is None or not version:
            return True
        return (not self.since or version >= self.since) and (not self.until or version < self.until)

    def annotation(self) -> str:
        return " ".join(f"{w} {'.'.join(map(str, v))}" for w, v in (("since", self.since),
                                                                     ("until", self.until)) if v)


def parse_config(text: str) -> dict[str, str]:
    """Options of a .config or fragment: name -> value ('n' for '# CONFIG_X is not set').
    Later lines win, as in Kconfig."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if m := _SET.match(line):
            values[m.group(1)] = m.group(2)
        elif m := _UNSET.match(line):
            values[m.group(1)] = "n"
    return values


def parse_fragment(text: str, name: str = "fragment") -> list[Request]:
    """Requests of one fragment, with their source line. Blank and comment lines are skipped;
    any other line that is not an assignment is an error naming the line."""
    requests: list[Request] = []
    for no, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        since: Version = ()
        until: Version = ()
        if (a := _ANNOTATION.match(line)) and (_SET.match(a.group(1)) or _UNSET.match(a.group(1))):
            line = a.group(1)
            bound = (int(a.group(3)), int(a.group(4)))
            since, until = (bound, ()) if a.group(2) == "since" else ((), bound)
        if m := _SET.match(line):
            requests.append(Request(m.group(1), m.group(2), f"{name}:{no}", since, until))
        elif m := _UNSET.match(line):
            requests.append(Request(m.group(1), "n", f"{name}:{no}", since, until))
        elif line and not line.startswith("#"):
            raise ForkdiffError(f"kconfig fragment {name}:{no}: cannot parse {raw!r}",
                                "write CONFIG_X=y|m|value or '# CONFIG_X is not set'")
    return requests


def merged_requests(fragments: Sequence[tuple[str, str]],
                    version: Version | None = None) -> dict[str, Request]:
    """(name, text) fragments in merge order -> the request that wins for each option, among
    those that apply to a tree of `version` (None: all of them)."""
    final: dict[str, Request] = {}
    for name, text in fragments:
        for req in parse_fragment(text, name):
            if req.applies(version):
                final[req.option] = req
    return final


def effective_text(text: str, version: Version, name: str = "fragment") -> str:
    """The fragment as merged on a tree of `version`: annotated lines that apply lose their
    annotation, those that do not become a comment saying why (merge_config.sh never sees
    them); every other line is kept as it is."""
    by_line = {int(r.source.rsplit(":", 1)[1]): r for r in parse_fragment(text, name)}
    out = []
    for no, raw in enumerate(text.splitlines(), 1):
        req = by_line.get(no)
        if req is None or not (req.since or req.until):
            out.append(raw)
            continue
        assignment = f"# {req.option} is not set" if req.value == "n" else f"{req.option}={req.value}"
        if req.applies(version):
            out.append(assignment)
        else:
            shown = ".".join(map(str, version))
            out.append(f"# forkdiff: not requested on {shown} ({req.annotation()}): {assignment}")
    return "\n".join(out) + "\n"


def write_effective(fragments: Sequence[Path], version: Version, dest: Path) -> list[Path]:
    """Effective copies of the fragments for a tree of `version`, in dest, same names."""
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    for f in fragments:
        p = dest / f.name
        p.write_text(effective_text(f.read_text(), version, f.name))
        out.append(p)
    return out


def _normal(value: str) -> str:
    return "n" if value in ("", "n") else value


def dropped(requests: Mapping[str, Request], config: Mapping[str, str]
            ) -> list[tuple[Request, str]]:
    """Pure check: each requested option whose final value differs, with a readable line
    ('CONFIG_X=y (base.config:12) -> is not set'). An option absent from .config counts as 'n'
    (Kconfig omits options whose dependencies are off)."""
    problems: list[tuple[Request, str]] = []
    for option, req in sorted(requests.items()):
        got = _normal(config.get(option, "n"))
        want = _normal(req.value)
        if got == want:
            continue
        shown_want = f"# {option} is not set" if want == "n" else f"{option}={want}"
        if option not in config:
            shown_got = "absent (dependencies off?)"
        elif got == "n":
            shown_got = "is not set"
        else:
            shown_got = f"={got}"
        problems.append((req, f"{shown_want} ({req.source}) -> {shown_got}"))
    return problems


def dropped_options(requests: Mapping[str, Request], config: Mapping[str, str]) -> list[str]:
    """The readable lines of dropped()."""
    return [line for _, line in dropped(requests, config)]


def profile_fragments(profile: str, kconfig_dir: Path | None = None) -> list[Path]:
    """Fragment files of a profile, in merge order."""
    if profile not in PROFILES:
        raise ForkdiffError(f"unknown kconfig profile {profile!r}",
                            f"use one of: {', '.join(PROFILES)}")
    folder = kconfig_dir or KCONFIG_DIR
    paths = [folder / f"{name}.config" for name in PROFILES[profile]]
    for p in paths:
        if not p.is_file():
            raise ForkdiffError(f"kconfig fragment {p} is missing",
                                "run forkdiff from a complete checkout (kconfig/ folder)")
    return paths


def check_final_config(fragments: Sequence[Path], config_path: Path,
                       log: Path | None = None, version: Version | None = None,
                       tree: Path | None = None) -> list[kconfig_needs.Outcome]:
    """Raise ForkdiffError listing every option the fragments asked for (those that apply to a
    tree of `version`) that the final .config lacks. With the tree's source (`tree`), an option
    its Kconfig no longer defines is told apart from one dropped for a missing dependency
    (orchestrator/prepare/kconfig_needs.py): its need is checked another way, and the vanished
    options whose need is met (or checked at boot) are returned instead of raised."""
    requests = merged_requests([(p.name, p.read_text()) for p in fragments], version)
    config = parse_config(config_path.read_text())
    problems = dropped(requests, config)
    if not problems:
        return []
    if tree is None:
        raise ForkdiffError(
            f"{len(problems)} kconfig option(s) dropped by olddefconfig: "
            + "; ".join(line for _, line in problems),
            "enable the options they depend on in the fragment, or remove the request "
            f"(final config: {config_path})", log)
    lines = {req.option: line for req, line in problems}
    outcomes = kconfig_needs.resolve([(r.option, _normal(r.value), r.source) for r, _ in problems],
                                     tree, {k: _normal(v) for k, v in config.items()})
    dependency = [lines[o.option] for o in outcomes if o.status == "dependency"]
    kconfig_needs.raise_unmet(outcomes, dependency, config_path, log)
    return [o for o in outcomes if o.status in ("met", "at-boot")]


Runner = Callable[[list[str], str], None]  # (command, phase) -> None; raises on failure

ARCH = "x86_64"


def configure(src: Path, obj: Path, fragments: Sequence[Path], run: Runner,
              version: Version | None = None) -> Path:
    """tinyconfig in O=obj, merge_config.sh -m with the fragments (their effective text for a
    tree of `version`, written to obj/forkdiff-fragments/), olddefconfig, then the check
    (requested options the tree's Kconfig no longer defines, whose need is met or checked at
    boot, are written to obj/forkdiff-kconfig-needs.json: kconfig_needs.save).
    Commands run with cwd=src through `run`. Returns the final .config."""
    o = f"O={obj}"
    fragments = write_effective(fragments, version or (), obj / "forkdiff-fragments")
    run(["make", "-C", str(src), f"ARCH={ARCH}", o, "tinyconfig"], "tinyconfig")
    run([str(src / "scripts/kconfig/merge_config.sh"), "-m", "-O", str(obj),
         str(obj / ".config"), *map(str, fragments)], "merge_config")
    run(["make", "-C", str(src), f"ARCH={ARCH}", o, "olddefconfig"], "olddefconfig")
    config = obj / ".config"
    outcomes = check_final_config(fragments, config, version=version, tree=src)
    kconfig_needs.save(outcomes, obj)
    return config


def run_record(config_path: Path) -> dict:
    """What a run records about the kernel it booted (every observation's `kernel_config`):
    the .config's sha256 and the options the simulator's rules read (simulator/runconfig.py),
    'n' for an option the .config sets off or leaves out."""
    values = parse_config(Path(config_path).read_text())
    return {"sha256": sha256_file(Path(config_path)),
            "options": {opt: _normal(values.get(opt, "n")) for opt in OPTIONS}}
