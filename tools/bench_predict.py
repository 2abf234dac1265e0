"""Benchmark: predictions for the seed's 11 VMA counts (21 ... 51,221) for both variants.
Prints the time of each and the total (the issue asks for under 10 s in total); asserts nothing.

Run: python -m tools.bench_predict"""

from __future__ import annotations

import time

from simulator.predict import build_parent, records
from simulator.scenario import Scenario, from_dict

SEED_VMAS = (21, 121, 221, 421, 821, 1621, 3221, 6421, 12821, 25621, 51221)


def _scenario() -> Scenario:
    """spawn's layout: one written anonymous page, then filled to --total (guest/spawn.c)."""
    return from_dict({"name": "seed-spawn", "groups": [{"count": 1, "touch": "all"}]})


def main() -> int:
    sc = _scenario()
    total = 0.0
    print(f"{'vmas':>7} {'variant':>9} {'seconds':>8} {'child_nodes':>11} {'nodes_alloc':>11}")
    for n in SEED_VMAS:
        t0 = time.perf_counter()
        parent = build_parent(sc, "spawn", n)  # shared by both variants
        dt = time.perf_counter() - t0
        total += dt
        print(f"{n:>7} {'parent':>9} {dt:>8.3f}")
        for variant in ("baseline", "patched"):
            t0 = time.perf_counter()
            recs = records(sc, variant, program="spawn", total=n, parent=parent,
                           measurements=("map_count", "op_counts"))
            dt = time.perf_counter() - t0
            total += dt
            ops = recs[-1]["ops"]
            print(f"{n:>7} {variant:>9} {dt:>8.3f} {ops['child_nodes']:>11} "
                  f"{ops['nodes_allocated']:>11}")
    print(f"predict total: {total:.2f} s for {len(SEED_VMAS)} VMA counts x 2 variants "
          "(target: < 10 s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
