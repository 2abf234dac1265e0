"""Operation lists in the shapes mm produces (simulator.maple.ops format), for comparing the
Python maple tree with a kernel's lib/maple_tree.c: the oracle suite (tests/tree/oracle) and
`forkdiff oracle check` draw from here."""

from __future__ import annotations

import random

PAGE = 4096
BASE = 0x10000
TAILS = ("none", "dup", "bulk", "dupfail")
# the operations each tail needs from the tree's lib/maple_tree.c
TAIL_OPS = {"none": (), "dup": ("dup",), "dupfail": ("dup",), "bulk": ("expect",)}


def layout(n: int, rng: random.Random, holes: bool = True) -> list[tuple[int, int]]:
    out, a = [], BASE
    for _ in range(n):
        b = a + PAGE * rng.choice((1, 1, 1, 2, 4)) - 1
        out.append((a, b))
        a = b + 1 + (PAGE * rng.choice((0, 1, 1, 3)) if holes else PAGE)
    return out


def mm_sequence(n: int, order: str, rcu: bool, seed: int, churn: float, tail: str) -> list[tuple]:
    """Operations in the shapes mm produces: page-aligned non-overlapping ranges inserted in
    ascending, descending or random order, with splits of an existing range, erases and NULL
    stores over one or more ranges, then optionally a dup + replace pass or a bulk rebuild."""
    rng = random.Random(seed)
    ranges = layout(n, rng)
    idx = list(range(n))
    if order == "desc":
        idx.reverse()
    elif order == "random":
        rng.shuffle(idx)
    ops: list[tuple] = [("tree", "rcu" if rcu else "norcu")]
    live: dict[int, int] = {}
    value = 1
    for i in idx:
        a, b = ranges[i]
        ops.append(("store", a, b, value))
        live[a] = b
        value += 1
        if rng.random() < churn and live:
            k = rng.choice(list(live))
            r = rng.random()
            if r < 0.3:
                ops.append(("erase", k))
                del live[k]
            elif r < 0.6 and live[k] - k >= PAGE:
                ops.append(("store", k, k + PAGE - 1, value))  # split (mprotect of a part)
                value += 1
                live[k + PAGE] = live[k]
                live[k] = k + PAGE - 1
            elif r < 0.8:
                ops.append(("store", k, live.pop(k), None))  # munmap
            else:
                ks = sorted(live)
                j = ks.index(k)
                span = ks[j:j + 3]
                ops.append(("store", span[0], live[span[-1]], None))  # munmap over several
                for s in span:
                    del live[s]
    ops.append(("dump",))
    final = sorted(live.items())
    if tail == "dup":
        ops += [("dup",), ("rcu", "off")]
        for j, (a, b) in enumerate(final):
            if rng.random() < 0.1:
                ops.append(("store", a, b, None))  # VM_DONTCOPY
            else:
                ops.append(("replace", a, b, 100000 + j))
        ops += [("rcu", "on"), ("dump",)]
    elif tail == "bulk":
        ops += [("tree", "norcu"), ("expect", len(final))]
        for j, (a, b) in enumerate(final):
            if rng.random() >= 0.05:
                ops.append(("bstore", a, b, j + 1))
        ops += [("bdestroy",), ("dump",)]
    elif tail == "dupfail":
        ops += [("dup", rng.randint(1, 8)), ("dump",)]
    return ops


def random_lists(seed: int, count: int, tails: tuple[str, ...] = TAILS,
                 sizes: tuple[int, ...] = (1, 3, 8, 15, 16, 17, 31, 60, 150, 700)
                 ) -> list[list[tuple]]:
    """`count` mm_sequence() lists drawn from `seed` (the same seed, the same lists)."""
    rng = random.Random(seed)
    return [mm_sequence(rng.choice(sizes), rng.choice(["asc", "desc", "random"]),
                        rng.random() < 0.5, rng.getrandbits(32), rng.choice([0.0, 0.1, 0.4]),
                        rng.choice(tails))
            for _ in range(count)]
