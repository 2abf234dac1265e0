"""`forkdiff merge OUT SHARD...`: join shard folders, then compare and report on the result."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..analysis import report as report_mod
from ..analysis.compare import compare_dir
from ..analysis.history_record import record_folder
from ..analysis.summary import print_summary
from ..results.verdicts import failing
from ..run.merge import merge
from .compare_cmd import parse_models


def _run(args: argparse.Namespace) -> int:
    m = merge(Path(args.out), [Path(s) for s in args.shards])
    print(f"merged {len(args.shards)} folders into {m.out}: {m.records} records"
          + (f" ({m.duplicates} identical duplicates dropped)" if m.duplicates else ""))
    if args.no_compare:
        print(f"next: forkdiff compare {m.out} && forkdiff report {m.out}")
        return 0
    models = parse_models(args.model) if args.model else dict(m.meta.get("model map") or {})
    df = compare_dir(m.out, models)
    record_folder(m.out, args.db)
    report_mod.render(m.out, args.db)
    print_summary(df, m.out)
    print(f"report: {m.out / 'report.html'}")
    return 1 if not failing(df).empty else 0


def register(sub) -> None:
    p = sub.add_parser("merge", help="join shard folders (vm-test --shard i/n) and compare/report them")
    p.add_argument("out", help="new folder for the merged run")
    p.add_argument("shards", nargs="+", help="shard folders (every shard of one run)")
    p.add_argument("--model", help="model per kernel (default: the run's, from run.json)")
    p.add_argument("--no-compare", action="store_true", help="only merge; no compare and report")
    p.add_argument("--db", help="results database to record the merged run in (default: "
                                "$FORKDIFF_HISTORY_DB, else history.sqlite in the cache)")
    p.set_defaults(func=_run)
