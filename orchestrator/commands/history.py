"""`forkdiff history`: verdicts and spawn forks/s per tree version over time from the results
database (orchestrator/analysis/history_db.py), which run first diverged, and a plot."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..analysis import history_db, history_view
from ..analysis.history_record import read_run
from ..errors import ForkdiffError


def _vmas(text: str) -> list[int]:
    try:
        return [int(x) for x in text.replace(",", " ").split()]
    except ValueError:
        raise ForkdiffError(f"--vmas {text!r} is not a list of VMA counts", "e.g. --vmas 21,421") from None


def run(args: argparse.Namespace) -> int:
    db = history_db.resolve(args.db)
    for folder in args.add or ():
        rec = read_run(Path(folder))
        history_db.record(db, rec)
        print(f"recorded {folder}: run {rec['run_id']} ({rec['tree']} {rec['tree_version']}, "
              f"{rec['verdict']})")
    df = history_view.frame(history_db.load(db), tree=args.tree)
    if df.empty:
        raise ForkdiffError(f"{db} holds no runs" + (f" of a tree matching {args.tree!r}" if args.tree else ""),
                            "record runs first: make vm-test, forkdiff compare/report DIR, or "
                            "forkdiff history --add DIR" + (" (or drop --tree)" if args.tree else ""))
    if args.vmas:
        keep = set(_vmas(args.vmas))
        df = df.drop(columns=[c for c in history_view.rate_columns(df) if c not in keep])
    div = history_view.divergences(df)
    runs, trees = df["run_id"].nunique(), df["tree"].nunique()
    print(f"{runs} run{'s' if runs != 1 else ''}, {trees} tree{'s' if trees != 1 else ''} in {db}")
    print(history_view.table_text(df))
    for line in history_view.divergence_text(div):
        print(line)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        history_view.plot(df, out / "history.png", div, title=f"forkdiff history ({db.name})")
        cols = [c for c in df.columns if c not in ("patches",)]
        df[cols].rename(columns={n: f"forks_per_s@{n}" for n in history_view.rate_columns(df)}) \
            .to_csv(out / "history.csv", index=False)
        print(f"plot: {out / 'history.png'}; table: {out / 'history.csv'}")
    else:
        print("plot: not written (give --out DIR)")
    return 0


def register(sub) -> None:
    p = sub.add_parser("history", help="verdicts and forks/s of recorded runs per tree version, "
                                       "and which run first diverged")
    p.add_argument("--db", help="results database (default: $FORKDIFF_HISTORY_DB, else "
                                "history.sqlite in the cache)")
    p.add_argument("--out", help="folder for history.png (the plot) and history.csv")
    p.add_argument("--tree", help="only trees whose name contains this text (e.g. linux-source-7.2)")
    p.add_argument("--vmas", help="only these spawn VMA counts' forks/s columns (e.g. 21,421)")
    p.add_argument("--add", nargs="+", metavar="DIR", help="record these compared results folders "
                                                           "first (runs recorded before are replaced)")
    p.set_defaults(func=run)
