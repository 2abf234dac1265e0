"""`forkdiff setup`: install the Debian packages forkdiff needs (or --print them)."""

from __future__ import annotations

import argparse

from ..prepare import debpkgs


def _run(args: argparse.Namespace) -> int:
    names = debpkgs.packages()
    if args.print:
        print(" ".join(names))
        return 0
    todo = debpkgs.missing(names)
    if not todo:
        print(f"setup: all {len(names)} Debian packages are installed")
        return 0
    print(f"setup: installing Debian packages: {' '.join(todo)}", flush=True)
    debpkgs.install(todo)
    still = debpkgs.missing(todo)
    if still:
        from ..errors import ForkdiffError

        raise ForkdiffError(f"apt-get did not install {' '.join(still)}",
                            "check the apt sources (Debian 12 with bookworm-backports for linux-source-6.12)")
    return 0


def register(sub) -> None:
    p = sub.add_parser("setup", help="install the Debian packages forkdiff needs (apt; --print lists them)")
    p.add_argument("--print", action="store_true",
                   help="print the package list (for apt-get install) instead of installing")
    p.set_defaults(func=_run)
