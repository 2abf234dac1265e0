"""`forkdiff compare DIR`: rerun the comparison on saved observations (no VM)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..analysis.against import saved_models
from ..analysis.compare import compare_dir
from ..analysis.history_record import record_folder
from ..analysis.summary import print_summary
from ..results.verdicts import failing


def parse_models(text: str | None) -> dict[str, str]:
    """MODEL=patched (every kernel against that model) or baseline=patched,patched=baseline."""
    from ..errors import ForkdiffError

    if not text:
        return {}
    variants = ("baseline", "patched")
    if "=" not in text:
        if text not in variants:
            raise ForkdiffError(f"unknown model {text!r}", "MODEL is baseline or patched")
        return dict.fromkeys(variants, text)
    out = {}
    for part in text.split(","):
        k, _, v = part.partition("=")
        if k not in variants or v not in variants:
            raise ForkdiffError(f"bad model mapping {part!r}", "write e.g. baseline=patched,patched=baseline")
        out[k] = v
    return out


def run(args: argparse.Namespace) -> int:
    out = Path(args.dir)
    df = compare_dir(out, parse_models(args.model) if args.model else saved_models(out),
                     against=Path(args.against) if args.against else None)
    print_summary(df, Path(args.dir))
    record_folder(out, args.db)
    return 1 if not failing(df).empty else 0


def register(sub) -> None:
    p = sub.add_parser("compare", help="compare saved observations with the simulator's predictions")
    p.add_argument("dir", help="results folder holding observations.jsonl")
    p.add_argument("--model", default=None,
                   help="model to compare each kernel with: 'patched', 'baseline', or a mapping "
                        "'baseline=patched,patched=baseline' (default: the run's, from run.json; "
                        "else each kernel's own variant)")
    p.add_argument("--against", default=None, metavar="OLD",
                   help="also compare the spawn forks/s with an earlier results folder (another "
                        "version of the tree): a slowdown beyond the modelled change is a mismatch")
    p.add_argument("--db", help="results database to record the run in (default: "
                                "$FORKDIFF_HISTORY_DB, else history.sqlite in the cache)")
    p.set_defaults(func=run)
