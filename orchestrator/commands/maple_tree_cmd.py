"""`forkdiff simulate tree --ops FILE [--oracle]` (registered by commands/simulate.py): dump the
Python maple tree, or the kernel's (--oracle), after each 'dump' line of an operation list, so
the two outputs can be diffed line by line."""

from __future__ import annotations

import sys
from pathlib import Path

from ..errors import ForkdiffError


def register(sub) -> None:  # the subcommand lives under `simulate`; nothing at top level
    return None


def run_tree(args) -> int:
    from simulator.maple.ops import OpsError, parse, replay

    path = Path(args.ops)
    try:
        text = path.read_text()
    except OSError as err:
        raise ForkdiffError(f"cannot read operation list {path}: {err.strerror}",
                            "give --ops an existing file") from None
    try:
        ops = parse(text, str(path))
    except OpsError as err:
        raise ForkdiffError(str(err), "fix the operation list (format: simulator/maple/ops.py)") from None
    if args.oracle:
        from ..cli_env import tree_knob
        from ..prepare.oracle import run_oracle_raw
        from ..prepare.tree import resolve_tree

        sys.stdout.write(run_oracle_raw(text, resolve_tree(tree_knob(args.tree))))
        return 0
    try:
        lines, _ = replay(ops)
    except ValueError as err:
        raise ForkdiffError(f"{path}: {err}", "fix the operation list") from None
    sys.stdout.write("".join(line + "\n" for line in lines))
    return 0
