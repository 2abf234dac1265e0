"""A requested kconfig option missing from the final .config: dropped by olddefconfig for a
missing dependency (an error, as before), or no longer defined by the tree's Kconfig (renamed,
folded into another option, removed; or kept only as a `transitional` symbol, which Kconfig
never writes to .config). For the second kind, kconfig/needs.toml says what forkdiff needed the
option for; that need is checked another way and the build goes on when it is met:

- the symbol that replaced it, when the tree's Kconfig says so: the symbol whose entry refers
  to a transitional one (`default OLD`), or the one that now carries the option's old prompt
  (needs.toml [prompt]), or one whose entry still names the option (help text);
  needs.toml `also` lists other symbols that meet the same need;
- a guest check at boot (needs.toml `guest`), run by the suites on every freshly booted guest
  of that kernel (check_guest).

Neither available, or the table has no entry for the option: a ForkdiffError saying which kind
of drop it is and what the option was for."""

from __future__ import annotations

import json
import re
import subprocess
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .. import resources
from ..errors import ForkdiffError

NEEDS_FILE = "needs.toml"
BOOT = "boot"  # needs.toml guest value: a guest that boots and answers over SSH is the proof
RESULT_FILE = "forkdiff-kconfig-needs.json"  # in the build folder, read into the manifest


@dataclass(frozen=True)
class Need:
    need: str
    guest: str | None = None
    also: tuple[str, ...] = ()


@dataclass(frozen=True)
class Needs:
    by_option: dict[str, Need]
    prompts: dict[str, str]


def load(path: Path | None = None) -> Needs:
    path = path or resources.data_dir("kconfig") / NEEDS_FILE
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise ForkdiffError(f"cannot read {path}: {err}",
                            "run forkdiff from a complete checkout (kconfig/needs.toml)") from None
    by_option: dict[str, Need] = {}
    for entry in data.get("need", []):
        need = Need(entry["need"], entry.get("guest"), tuple(entry.get("also", ())))
        for opt in entry["options"]:
            by_option[opt] = need
    return Needs(by_option, dict(data.get("prompt", {})))


# ------------------------------------------------------------------------ the tree's Kconfig
_ENTRY = re.compile(r"^[ \t]*(?:menu)?config[ \t]+(\w+)[ \t]*$", re.M)
_END = re.compile(r"^(?:(?:menu)?config|choice|endchoice|menu|endmenu|if|endif|source|"
                  r"comment|mainmenu)\b", re.M)
_PROMPT = re.compile(r"^[ \t]*(?:bool|tristate|int|hex|string|prompt)[ \t]+\"([^\"]*)\"", re.M)


@dataclass
class KconfigIndex:
    """What every Kconfig file of a tree defines (scripts/kconfig/tests excluded)."""

    defined: set[str] = field(default_factory=set)
    transitional: set[str] = field(default_factory=set)
    prompts: dict[str, set[str]] = field(default_factory=dict)  # prompt -> symbols
    bodies: dict[str, list[str]] = field(default_factory=dict)  # symbol -> its entries' text

    def add(self, text: str) -> None:
        for m in _ENTRY.finditer(text):
            name = m.group(1)
            end = _END.search(text, m.end())
            body = text[m.end(): end.start() if end else len(text)]
            self.defined.add(name)
            self.bodies.setdefault(name, []).append(body)
            if re.search(r"^[ \t]+transitional\b", body, re.M):
                self.transitional.add(name)
            for p in _PROMPT.findall(body):
                self.prompts.setdefault(p.strip(), set()).add(name)

    def referring_to(self, name: str) -> list[str]:
        """Symbols (other than `name`) whose entry mentions `name` as a word."""
        word = re.compile(rf"\b{re.escape(name)}\b")
        return sorted(s for s, bodies in self.bodies.items()
                      if s != name and any(word.search(b) for b in bodies))


def scan_tree(tree: Path) -> KconfigIndex:
    res = subprocess.run(["grep", "-rlE", "--include=Kconfig*", r"^\s*(menu)?config\s", "."],
                         cwd=tree, capture_output=True, text=True)
    index = KconfigIndex()
    for rel in sorted(res.stdout.split()):
        if rel.startswith("./scripts/kconfig/tests/"):
            continue
        try:
            index.add((tree / rel).read_text(errors="replace"))
        except OSError:
            continue
    return index


# ------------------------------------------------------------------------ classification
@dataclass(frozen=True)
class Outcome:
    """One requested option the final .config lacks, classified."""

    option: str  # CONFIG_X
    want: str  # 'y', 'n', a value
    source: str  # fragment:line
    kind: str  # "dependency" | "transitional" | "undefined"
    successors: tuple[str, ...] = ()  # CONFIG_ names the tree's Kconfig points to
    how: str = ""  # how the tree's Kconfig says so
    need: str = ""  # what forkdiff needed it for ("" when needs.toml has no entry)
    met_by: str = ""  # "CONFIG_Y=y" when a symbol meets the need in the final .config
    guest: str | None = None  # the boot check that decides or confirms the need
    status: str = ""  # "met" | "at-boot" | "unmet" | "dependency"

    def describe(self) -> str:
        if self.kind == "transitional":
            what = (f"{self.option} is only a transitional symbol in this tree's Kconfig (renamed"
                    + (f" to {', '.join(self.successors)}" if self.successors else "") + ")")
        elif self.successors:
            what = (f"{self.option} is no longer defined by this tree's Kconfig: renamed or folded "
                    f"into {', '.join(self.successors)} ({self.how})")
        else:
            what = f"{self.option} is no longer defined by this tree's Kconfig (removed or renamed)"
        need = f"forkdiff needed it for: {self.need}" if self.need else \
            f"kconfig/{NEEDS_FILE} does not say what forkdiff needed it for"
        if self.status == "met":
            how = f"need met by {self.met_by}" + (
                f"; confirmed at boot by `{self.guest}`" if self.guest and self.guest != BOOT else "")
        elif self.status == "at-boot":
            how = ("no symbol meets it in the final .config; "
                   + ("the guest's boot is the check" if self.guest == BOOT
                      else f"checked at boot by `{self.guest}`"))
        else:
            how = "no symbol of this tree meets it and there is no guest check for it"
        return f"{what}; {need}; {how}"


def _shown(option: str, value: str) -> str:
    return f"# {option} is not set" if value == "n" else f"{option}={value}"


def classify(option: str, want: str, source: str, index: KconfigIndex, needs: Needs,
             config: Mapping[str, str]) -> Outcome:
    """Classify one requested option the final .config lacks (`config`: the final values,
    'n' for an absent option)."""
    name = option.removeprefix("CONFIG_")
    if name in index.defined and name not in index.transitional:
        return Outcome(option, want, source, "dependency", status="dependency")
    kind = "transitional" if name in index.transitional else "undefined"
    successors: list[str] = []
    how = ""
    referring = index.referring_to(name)
    prompt = needs.prompts.get(option, "")
    same_prompt = sorted(index.prompts.get(prompt, set()) - {name}) if prompt else []
    if kind == "transitional" and referring:
        successors, how = referring, f"their entries refer to the transitional {name}"
    elif len(same_prompt) == 1:
        successors, how = same_prompt, f"the tree gives {same_prompt[0]} the prompt {prompt!r} {name} had"
    elif referring:
        successors, how = referring, f"their entries still name {name}"
    successors = [f"CONFIG_{s}" for s in successors]
    entry = needs.by_option.get(option)
    if entry is None:
        return Outcome(option, want, source, kind, tuple(successors), how, status="unmet")
    met_by = ""
    for cand in [*successors, *entry.also]:
        got = config.get(cand, "n") or "n"
        if got == want:
            met_by = _shown(cand, got)
            break
    if not met_by and want == "n" and not any(config.get(s, "n") not in ("n", "") for s in successors):
        met_by = f"the tree itself (it has no {option} to turn on)"
    status = "met" if met_by else ("at-boot" if entry.guest else "unmet")
    return Outcome(option, want, source, kind, tuple(successors), how, entry.need, met_by,
                   entry.guest, status)


def resolve(dropped: list[tuple[str, str, str]], tree: Path, config: Mapping[str, str],
            needs: Needs | None = None) -> list[Outcome]:
    """dropped: (CONFIG_X, wanted value, fragment:line) of every option the final .config
    lacks -> their outcomes. The tree's Kconfig is read only when there is something to
    classify."""
    if not dropped:
        return []
    index = scan_tree(tree)
    needs = needs or load()
    return [classify(o, w, s, index, needs, config) for o, w, s in dropped]


def raise_unmet(outcomes: list[Outcome], dependency_lines: list[str], config_path: Path,
                log: Path | None = None) -> None:
    """The ForkdiffError for options dropped for a dependency and for vanished options whose
    need nothing meets (nothing raised when there are none)."""
    unmet = [o for o in outcomes if o.status == "unmet"]
    if not dependency_lines and not unmet:
        return
    parts = []
    if dependency_lines:
        parts.append(f"{len(dependency_lines)} kconfig option(s) dropped by olddefconfig (the "
                     "tree's Kconfig defines them: a dependency is off, or a select overrides "
                     "the request): " + "; ".join(dependency_lines))
    if unmet:
        parts.append(f"{len(unmet)} requested option(s) this tree's Kconfig no longer defines, "
                     "with the need unmet: " + "; ".join(
                         f"{_shown(o.option, o.want)} ({o.source}): {o.describe()}" for o in unmet))
    nxt = []
    if dependency_lines:
        nxt.append("enable the options they depend on in the fragment, or remove the request")
    if unmet:
        nxt.append(f"say in kconfig/{NEEDS_FILE} what meets the need on this tree (`also` symbols "
                   "or a `guest` check), or add a '# until X.Y' annotation to the request")
    raise ForkdiffError(" | ".join(parts), "; ".join(nxt) + f" (final config: {config_path})", log)


def save(outcomes: list[Outcome], obj: Path) -> None:
    """The vanished options whose need is met or checked at boot, for the manifest."""
    kept = [asdict(o) for o in outcomes if o.status in ("met", "at-boot")]
    (obj / RESULT_FILE).write_text(json.dumps(kept, indent=1) + "\n")


def saved(obj: Path) -> list[dict]:
    try:
        return json.loads((obj / RESULT_FILE).read_text())
    except (OSError, ValueError):
        return []


def notice(entry: Mapping) -> str:
    return Outcome(**{**entry, "successors": tuple(entry.get("successors", ()))}).describe()


# ------------------------------------------------------------------------ at boot
Runner = Callable[[str], tuple[int, str]]  # shell command in the guest -> (status, output)


def guest_checks(substitutes: list[Mapping] | None) -> list[tuple[str, str, str]]:
    """(option, need, shell test) of the checks a freshly booted guest must pass."""
    return [(s["option"], s.get("need", ""), s["guest"]) for s in substitutes or []
            if s.get("guest") and s["guest"] != BOOT]


def check_guest(substitutes: list[Mapping] | None, run: Runner, say: Callable[[str], None],
                label: str = "") -> None:
    """Run each vanished option's guest check; a ForkdiffError naming the first that fails."""
    for option, need, test in guest_checks(substitutes):
        status, out = run(test)
        if status != 0:
            raise ForkdiffError(
                f"{label}: {option} is not in this tree's Kconfig and its need is not met in the "
                f"booted guest: `{test}` failed ({out.strip()[-200:] or f'exit {status}'}); "
                f"forkdiff needs it for: {need}",
                f"enable the option that replaced {option} in this tree (see the build's notice) "
                f"or run on a tree that has it")
        say(f"{label}: {option} (not in this tree's Kconfig): need met in the guest: `{test}`")
