"""`forkdiff report DIR`: render report.html / report.md / junit.xml from a compared folder."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..analysis.history_record import record_folder
from ..analysis.report import render
from ..errors import ForkdiffError
from ..results.folder import VERDICTS_JSONL


def run(args: argparse.Namespace) -> int:
    out = Path(args.dir)
    if not (out / VERDICTS_JSONL).is_file():
        raise ForkdiffError(f"no verdicts in {out}", f"run 'forkdiff compare {out}' first")
    record_folder(out, args.db)
    res = render(out, args.db)
    print(res["html"])
    return 1 if res["failing"] else 0


def register(sub) -> None:
    p = sub.add_parser("report", help="render the report of a compared results folder")
    p.add_argument("dir", help="results folder holding verdicts.jsonl")
    p.add_argument("--db", help="results database to record the run in and show its tree's "
                                "history from (default: $FORKDIFF_HISTORY_DB, else "
                                "history.sqlite in the cache)")
    p.set_defaults(func=run)
