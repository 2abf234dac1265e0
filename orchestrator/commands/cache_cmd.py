"""`forkdiff cache du` and `forkdiff cache prune [--older-than DAYS] [--dry-run]`: how big
the cache is, and removing what has not been used for a while (orchestrator.cache_prune)."""

from __future__ import annotations

import argparse
import time

from ..cache import cache_dir
from ..cache_prune import candidates, remove, usage
from ..errors import ForkdiffError


def _mb(n: int) -> str:
    return f"{n / 2**20:,.1f} MiB"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("cache", help="cache size, and removing entries not used for a while")
    csub = p.add_subparsers(dest="cache_command", metavar="ACTION", required=True)
    d = csub.add_parser("du", help="bytes per area of the cache")
    d.set_defaults(func=_du)
    pr = csub.add_parser("prune", help="remove kernels, source copies, images and logs not used lately")
    pr.add_argument("--older-than", type=float, default=14.0, metavar="DAYS",
                    help="remove what was last used more than DAYS ago (default 14)")
    pr.add_argument("--dry-run", action="store_true", help="only list what would go")
    pr.set_defaults(func=_prune)


def _du(args: argparse.Namespace) -> int:
    root = cache_dir()
    sizes = usage(root)
    for name, n in sizes.items():
        print(f"{_mb(n):>14}  {name}")
    print(f"{_mb(sum(sizes.values())):>14}  total ({root})")
    return 0


def _prune(args: argparse.Namespace) -> int:
    if args.older_than < 0:
        raise ForkdiffError(f"--older-than {args.older_than:g} is negative", "give a number of days, e.g. 14")
    entries = candidates(args.older_than)
    verb = "would remove" if args.dry_run else "removing"
    logs = [e for e in entries if e.kind == "guest log"]
    for e in entries:
        if e.kind != "guest log":
            age = (time.time() - e.last_used) / 86400
            print(f"{verb} {e.kind}: {e.path} ({_mb(e.size)}, last used {age:.1f} days ago)")
        if not args.dry_run:
            remove(e)
    if logs:
        print(f"{verb} {len(logs)} guest console logs ({_mb(sum(e.size for e in logs))})")
    print(f"{'would free' if args.dry_run else 'freed'} {_mb(sum(e.size for e in entries))} "
          f"in {len(entries)} entries (cache: {cache_dir()})")
    return 0
