"""`forkdiff` command line. Each subcommand lives in orchestrator/commands/<name>.py and exposes
register(subparsers); this module only discovers them, dispatches, and turns ForkdiffError into
one line on stderr and a non-zero exit."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from . import commands
from .errors import ForkdiffError


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line with the next step (like every other error)
    instead of the usage block: `forkdiff: error: <cause> | next: forkdiff <cmd> --help`."""

    def error(self, message: str) -> None:  # type: ignore[override]
        err = ForkdiffError(f"{self.prog}: {message}", f"see '{self.prog} --help'")
        print(err.one_line(), file=sys.stderr)
        sys.exit(err.exit_code)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="forkdiff",
        description="Differential testing of fork()/dup_mmap() in a real kernel against a Python model.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True,
                                parser_class=_Parser)
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # a command may ask for its own exit code on usage errors (bisect-run: abort, 128)
        err = ForkdiffError(f"forkdiff {args.command}: unrecognized arguments: {' '.join(extra)}",
                            f"see 'forkdiff {args.command} --help'")
        if getattr(args, "usage_exit", None) is None:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        print(err.one_line(), file=sys.stderr)
        return int(args.usage_exit)
    try:
        rc = args.func(args)
    except ForkdiffError as err:
        print(err.one_line(), file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("forkdiff: interrupted", file=sys.stderr)
        return 130
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
