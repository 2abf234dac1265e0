"""`forkdiff export kcidb DIR`: the results folder as a KCIDB report (orchestrator/analysis/kcidb.py),
validated with kcidb-io before it is written. Submitting it is kcidb's own tool's job (docs/kcidb.md)."""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

from ..analysis.kcidb import ORIGIN, ExportOptions, export, schema
from ..errors import ForkdiffError


def _kcidb(args: argparse.Namespace) -> int:
    out = Path(args.dir)
    if not re.fullmatch(r"[a-z0-9_]+", args.origin):
        raise ForkdiffError(f"--origin {args.origin!r}: KCIDB origins are lower-case letters, "
                            "digits and '_'", f"e.g. --origin {ORIGIN}")
    dest = Path(args.output) if args.output else out / "kcidb.json"
    opts = ExportOptions(origin=args.origin, label=args.label or "", tree_name=args.tree_name or "",
                         git_url=args.git_url or "", git_branch=args.git_branch or "")
    data = export(out, dest, opts)
    statuses = Counter(t["status"] for t in data["tests"])
    print(f"kcidb: {len(data['checkouts'])} checkouts, {len(data['builds'])} builds, "
          f"{len(data['tests'])} tests ({', '.join(f'{s} {n}' for s, n in sorted(statuses.items()))}); "
          f"valid under KCIDB schema {schema()} (kcidb-io) -> {dest}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("export", help="export a results folder for other systems (kcidb)")
    what = p.add_subparsers(dest="format", metavar="FORMAT", required=True,
                            parser_class=type(p))
    k = what.add_parser("kcidb", help="a KCIDB report (KernelCI's results database), validated "
                                      "with kcidb-io")
    k.add_argument("dir", help="results folder holding verdicts.jsonl and kernels/")
    k.add_argument("-o", "--output", help="report file (default: DIR/kcidb.json)")
    k.add_argument("--label", help="mixed into every test id: one label per run, the same for "
                                   "all its shards (default: none, so the same build's tests "
                                   "keep their ids across runs)")
    k.add_argument("--origin", default=ORIGIN, help=f"KCIDB origin (default: {ORIGIN})")
    k.add_argument("--tree-name", help="checkouts' tree_name (default: from the tree's identity)")
    k.add_argument("--git-url", help="checkouts' git_repository_url (https://...)")
    k.add_argument("--git-branch", help="checkouts' git_repository_branch")
    k.set_defaults(func=_kcidb)
