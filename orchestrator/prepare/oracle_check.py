"""`forkdiff oracle check`: does the Python maple tree still match this tree's lib/maple_tree.c?

Builds the oracle for the tree (orchestrator/prepare/oracle.py), then replays operation lists on both
sides: the committed lists of tests/tree/oracle/regressions and seeded mm-shaped random lists
(simulator/maple/gen.py), and compares every dump line (nodes, pivots, slots, gaps and the
allocation log). The Python side runs with the allocation rules the tree's facts select
(simulator/runconfig.py maple_model: allocation rules and write path); a tree whose rules the port does not model is said
to be so, and the comparison still runs, so the user sees how far apart they are. A list that
needs an operation the tree's maple_tree.c lacks (__mt_dup before 6.8, mas_expected_entries
after 6.12) is skipped with the reason. Any divergence, or rules not modelled, is a non-zero
exit; the first differing list is saved in the cache's oracle-failures/ with its dump pair
printed."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from ..cache import cache_path
from ..errors import ForkdiffError
from .oracle import FEATURE_OPS, harness_of, run_oracle_raw
from .tree import KernelTree

REGRESSIONS = Path(__file__).resolve().parents[2] / "tests" / "tree" / "oracle" / "regressions"  # checkout only


@dataclass
class ListResult:
    name: str
    lines: int = 0  # dump/dup lines compared
    difference: str = ""  # empty: every line agrees
    skipped: str = ""  # why the list was not run
    oracle_line: str = ""
    python_line: str = ""


def missing_ops(features: tuple[str, ...]) -> set[str]:
    """Operations the tree's oracle refuses (its maple_tree.c lacks the function)."""
    return {op for macro, ops in FEATURE_OPS.items() if macro not in features for op in ops}


def op_lists(seed: int, count: int, unsupported: set[str],
             regressions: Path = REGRESSIONS) -> list[tuple[str, list[tuple]]]:
    """(name, ops): the committed regression lists, then `count` seeded random lists whose
    tails use only operations the tree supports."""
    from simulator.maple.gen import TAIL_OPS, TAILS, random_lists
    from simulator.maple.ops import parse

    out = [(f.name, parse(f.read_text(), str(f))) for f in sorted(regressions.glob("*.ops"))]
    tails = tuple(t for t in TAILS if not set(TAIL_OPS[t]) & unsupported)
    out += [(f"random-{seed}-{i}", ops) for i, ops in enumerate(random_lists(seed, count, tails))]
    return out


def first_difference(oracle_line: str, python_line: str) -> str:
    a, b = json.loads(oracle_line), json.loads(python_line)
    for key in a:
        if a[key] == b.get(key):
            continue
        if key == "nodes":
            for i, (x, y) in enumerate(zip(a[key], b[key], strict=False)):
                if x != y:
                    return f"node {i} (pre-order): oracle {x} python {y}"
            return f"node count: oracle {len(a[key])} python {len(b[key])}"
        return f"{key}: oracle {str(a[key])[:300]} python {str(b.get(key))[:300]}"
    return "lines differ"


def compare_list(name: str, ops: list[tuple], tree: KernelTree, alloc: str,
                 unsupported: set[str], write: str = "big_node") -> ListResult:
    from simulator.maple.ops import format_ops, replay

    res = ListResult(name)
    needs = sorted({op[0] for op in ops} & unsupported)
    if needs:
        res.skipped = (f"uses {', '.join(needs)}, which this tree's lib/maple_tree.c cannot do "
                       "(its dup_mmap() never does either)")
        return res
    oracle = run_oracle_raw(format_ops(ops), tree).splitlines()
    python, _ = replay(ops, alloc, write)
    res.lines = min(len(oracle), len(python))
    if len(oracle) != len(python):
        res.difference = f"{len(oracle)} oracle lines, {len(python)} python lines"
    for i, (o, p) in enumerate(zip(oracle, python, strict=False)):
        if o != p:
            res.difference = f"output line {i}: {first_difference(o, p)}"
            res.oracle_line, res.python_line = o, p
            break
    return res


def check(tree: KernelTree, facts: dict, seed: int = 1, count: int = 40,
          out: TextIO | None = None) -> int:
    """Run the check, print one line per list and a verdict; return the exit status."""
    import sys

    from simulator.maple.ops import format_ops
    from simulator.runconfig import maple_model

    out = out or sys.stdout
    h = harness_of(tree.path)
    alloc, write, problems = maple_model(facts)
    unsupported = missing_ops(h.features)
    print(f"tree {tree.path} (version {facts.get('version', tree.version)}): harness layout "
          f"{h.layout}, maple_tree.c offers {', '.join(h.features) or 'neither __mt_dup nor mas_expected_entries'}",
          file=out)
    for p in problems:
        print(f"NOT MODELLED: {p.message()}. The Python port is compared with its "
              f"'{alloc}' rules anyway; do not trust the other verdicts on this tree.", file=out)
    if not problems:
        print(f"maple_alloc={facts.get('maple_alloc', 'prealloc')}, maple_write={write}: the "
              f"Python port runs with its '{alloc}' allocation rules and '{write}' write path",
              file=out)
    results = []
    first_bad = None
    for name, ops in op_lists(seed, count, unsupported):
        r = compare_list(name, ops, tree, alloc, unsupported, write)
        results.append(r)
        if r.skipped:
            print(f"  {name}: skipped: {r.skipped}", file=out)
        elif r.difference:
            print(f"  {name}: DIFFERS ({r.difference[:160]})", file=out)
            if first_bad is None:
                first_bad = (r, ops)
        else:
            print(f"  {name}: agrees ({r.lines} lines)", file=out)
    ran = [r for r in results if not r.skipped]
    bad = [r for r in ran if r.difference]
    print(f"{len(ran) - len(bad)} of {len(ran)} operation lists agree with {tree.path}'s "
          f"lib/maple_tree.c ({len(results) - len(ran)} skipped)", file=out)
    if first_bad is not None:
        r, ops = first_bad
        saved = cache_path("oracle-failures") / f"check-{tree.key}-{r.name}"
        saved.write_text(f"# forkdiff oracle check on {tree.path}: {r.difference[:200]}\n"
                         + format_ops(ops))
        print(f"first divergence: {r.name}, {r.difference}\n  oracle: {r.oracle_line[:2000]}\n"
              f"  python: {r.python_line[:2000]}\n  operation list saved as {saved}", file=out)
    if not ran:
        raise ForkdiffError("no operation list could run on this tree", "check the tree's lib/maple_tree.c")
    if bad or problems:
        print("VERDICT: the Python maple tree does NOT match this tree: the simulator's "
              "predictions for it are not to be trusted", file=out)
        return 1
    print("VERDICT: the Python maple tree matches this tree's lib/maple_tree.c on every list",
          file=out)
    return 0
