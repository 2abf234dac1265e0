"""`forkdiff scenario from-maps FILE [--smaps FILE]`: a captured /proc/PID/maps (and smaps for the
pages written) as a list scenario on stdout (simulator/from_maps.py), which SCENARIOS= takes;
what is not reproduced, and why, goes to stderr and into the YAML's leading comments."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from simulator.from_maps import convert
from simulator.scenario import ScenarioError, dump_yaml, from_dict

from ..errors import ForkdiffError


def register(sub) -> None:
    p = sub.add_parser("scenario", help="make scenarios (from a captured /proc/PID/maps)")
    ssub = p.add_subparsers(dest="scenario_command", metavar="WHAT", required=True)
    f = ssub.add_parser("from-maps", help="a captured /proc/PID/maps as a scenario (YAML on stdout)")
    f.add_argument("maps", help="the captured /proc/PID/maps ('-': stdin)")
    f.add_argument("--smaps", help="its /proc/PID/smaps, captured at the same time: the pages "
                                   "written (Anonymous:) are written in the guest too")
    f.add_argument("--name", help="scenario name (default: the file's name without suffix)")
    f.add_argument("--description", default="", help="the scenario's description (e.g. where it came from)")
    f.add_argument("--exe", default="",
                   help="the source program's executable, whose mappings are left out (default: "
                        "the file of the first line; 'none': keep every file)")
    f.add_argument("--base", type=lambda x: int(x, 0), default=None,
                   help="address of the first VMA in the guest (default 0x100000000 plus the "
                        "first address modulo 1 GiB)")
    f.set_defaults(func=_from_maps)


def _read(path: str) -> tuple[str, str]:
    if path == "-":
        return sys.stdin.read(), "<stdin>"
    try:
        return Path(path).read_text(), path
    except OSError as err:
        raise ForkdiffError(f"cannot read {path}: {err.strerror}",
                            "capture it with: cat /proc/PID/maps > FILE") from None


def _from_maps(args) -> int:
    text, src = _read(args.maps)
    smaps = _read(args.smaps)[0] if args.smaps else None
    name = args.name or re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(src).stem if src != "<stdin>" else "replayed")
    try:
        conv = convert(text, smaps, name=name, description=args.description,
                       exe=None if args.exe == "none" else args.exe, source=src, base=args.base)
        out = dump_yaml(conv.scenario, [f"forkdiff scenario from-maps {src}"
                                        + (f" --smaps {args.smaps}" if args.smaps else ""), *conv.notes])
        from_dict(conv.scenario.to_dict(compact=False), source=name)  # it reads back
    except ScenarioError as err:
        raise ForkdiffError(str(err), "check the file is a /proc/PID/maps capture") from None
    for n in conv.notes:
        print(f"forkdiff scenario: {n}", file=sys.stderr)
    sys.stdout.write(out)
    return 0
