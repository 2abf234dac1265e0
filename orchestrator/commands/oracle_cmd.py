"""`forkdiff oracle check [--tree PATH|debian:SUITE:PACKAGE]`: build the maple tree oracle
against a kernel tree's own lib/maple_tree.c and compare the Python port with it, so a user
sees whether the simulator still knows that tree's maple tree before trusting other verdicts
(orchestrator/prepare/oracle_check.py)."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("oracle", help="the maple tree oracle: the kernel's lib/maple_tree.c in userspace")
    osub = p.add_subparsers(dest="oracle_command", metavar="WHAT", required=True)
    c = osub.add_parser("check", help="compare the Python maple tree with a tree's lib/maple_tree.c")
    c.add_argument("--tree", default=None,
                   help="kernel tree (a path or debian:SUITE:PACKAGE; default: $KERNEL_TREE, "
                        "else linux-source-6.12)")
    c.add_argument("--seed", type=int, default=1, help="seed of the random operation lists (default 1)")
    c.add_argument("--count", type=int, default=40, help="random operation lists (default 40)")
    c.set_defaults(func=_check)


def _check(args) -> int:
    from ..cli_env import tree_knob
    from ..errors import ForkdiffError
    from ..prepare.oracle_check import check
    from ..prepare.tree import resolve_tree
    from ..prepare.treefacts import detect

    if args.count < 0:
        raise ForkdiffError(f"--count {args.count} is negative", "give --count 0 or more")
    tree = resolve_tree(tree_knob(args.tree))
    return check(tree, detect(tree.path), seed=args.seed, count=args.count)
