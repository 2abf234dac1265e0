"""`forkdiff report DIR`: render report.html / report.md / junit.xml from a compared folder."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..analysis.report import render
from ..errors import ForkdiffError


def run(args: argparse.Namespace) -> int:
    out = Path(args.dir)
    if not (out / "verdicts.jsonl").is_file():
        raise ForkdiffError(f"no verdicts in {out}", f"run 'forkdiff compare {out}' first")
    res = render(out)
    print(res["html"])
    return 1 if res["failing"] else 0


def register(sub) -> None:
    p = sub.add_parser("report", help="render the report of a compared results folder")
    p.add_argument("dir", help="results folder holding verdicts.jsonl")
    p.set_defaults(func=run)
