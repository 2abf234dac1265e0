"""Spawn forks/s per kernel and VMA count of a run's observation records: the mean over the
runs of each of the seed's counts (spawn's "total-N" jobs; calibration and replayed layouts
are layouts of their own, not the run's VMA counts). The results database
(orchestrator/analysis/history_record.py) and KCIDB export (orchestrator/analysis/kcidb.py)
keep them."""

from __future__ import annotations

from collections.abc import Iterable

from ..run.calibration import is_calibration, is_replayed


def spawn_rates(records: Iterable[dict]) -> list[dict]:
    """[{variant, profile, vmas, forks_per_s, runs}] sorted by kernel and count."""
    spawn: dict[tuple[str, str, int], list[float]] = {}
    for r in records:
        sc = r.get("scenario") if isinstance(r.get("scenario"), dict) else {}
        if (r.get("suite") != "spawn" or r.get("measurement") != "spawn"
                or is_calibration(sc) or is_replayed(sc)):
            continue
        n = (r.get("values") or {}).get("map_count")
        if isinstance(n, int) and isinstance(r.get("value"), int | float):
            spawn.setdefault((r["variant"], r.get("profile") or "perf", n), []).append(float(r["value"]))
    return [{"variant": v, "profile": p, "vmas": n, "forks_per_s": sum(xs) / len(xs), "runs": len(xs)}
            for (v, p, n), xs in sorted(spawn.items())]
