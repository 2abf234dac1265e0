"""`forkdiff reply RESULTS_DIR`: write the mail body a kernel test robot would reply to the patch
with (orchestrator/analysis/reply.py) into a file and print it. Never sent."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..analysis.reply import body
from ..cache import atomic_write


def run(args: argparse.Namespace) -> int:
    out = Path(args.dir)
    text, failed = body(out, [Path(p) for p in args.patches or ()], force=args.force)
    dest = Path(args.output) if args.output else out / "reply.txt"
    atomic_write(dest, text)
    dest.chmod(0o644)
    sys.stdout.write(text)
    print(f"forkdiff: reply written to {dest} (not sent){'' if failed else ' - PASS: nothing to report'}",
          file=sys.stderr)
    return 0


def register(sub) -> None:
    p = sub.add_parser("reply", help="write a plain-text mail body for a FAIL, as kernel test "
                                     "robots reply to a patch (never sent)")
    p.add_argument("dir", help="compared results folder (verdicts.jsonl, run.json, kernels/)")
    p.add_argument("-o", "--output", help="file to write (default: DIR/reply.txt)")
    p.add_argument("--patches", nargs="+", metavar="PATCH",
                   help="the patch files the run applied, for their subjects and paths when the "
                        "folder predates their record (matched by sha256)")
    p.add_argument("--force", action="store_true", help="write a notice for a PASS too")
    p.set_defaults(func=run)
