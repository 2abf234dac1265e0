"""Benchmark: the spawn calibration's extra wall time on the host: the simulator's work counts
for every calibration layout (orchestrator.run.calibration, baseline model) and the work model fit
with its leave-one-layout-out refits. The rates fed to the fit here are placeholders (1 us per
VMA): only its running time is measured. The guest side costs CALIBRATION_DURATION guest
seconds per layout plus the program's setup; with OUT=<results folder> of a spawn run (or
the folder as argument) it also prints the wall time the calibration jobs took there, from
their records' timestamps. Prints figures; asserts nothing.
Run: python -m tools.bench_calibration [results-folder]"""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import datetime
from pathlib import Path

from orchestrator.run.calibration import CALIBRATION_DURATION, calibration_scenarios
from simulator.cost import CalPoint, calibrate
from simulator.predict import build_parent, records
from simulator.scenario import from_dict


def guest_wall(out: Path) -> tuple[float, float, int]:
    """(calibration jobs' wall seconds, all spawn jobs' wall seconds, calibration jobs) of a
    results folder: each job's time runs from the previous record of its guest to its own
    final spawn record (boot excluded)."""
    recs = [json.loads(line) for line in (out / "observations.jsonl").read_text().splitlines()
            if line.strip()]
    recs = [r for r in recs if r.get("suite") == "spawn"]
    cal = total = 0.0
    n = 0
    for variant in {r["variant"] for r in recs}:
        # a job's records are written together when it ends: time it from the previous job's
        # final record (the first job of a guest, timed from its boot, is left out)
        rs = sorted((r for r in recs if r["variant"] == variant and r["measurement"] == "spawn"),
                    key=lambda r: r["timestamp"])
        prev = None
        for r in rs:
            t = datetime.fromisoformat(r["timestamp"])
            if prev is not None:
                dt = (t - prev).total_seconds()
                total += dt
                if r["scenario"].get("calibration"):
                    cal += dt
                    n += 1
            prev = t
    return cal, total, n


def main() -> int:
    t_all = time.perf_counter()
    points = []
    for sc in calibration_scenarios():
        t0 = time.perf_counter()
        s = from_dict({k: v for k, v in sc.items() if k != "calibration"})
        parent = build_parent(s, "spawn")
        work = records(s, "baseline", program="spawn", parent=parent,
                       measurements=("op_counts",))[-1]["work"]
        dt = time.perf_counter() - t0
        print(f"  {sc['name']:<26} {parent.map_count:>6} VMAs  simulate {dt:6.3f} s")
        points.append(CalPoint(sc["name"], parent.map_count, 1e6 / parent.map_count, work))
    t0 = time.perf_counter()
    calibrate(points)
    fit_s = time.perf_counter() - t0
    total = time.perf_counter() - t_all
    print(f"  fit + leave-one-layout-out refits: {fit_s:.3f} s")
    print(f"calibration extra host time: {total:.2f} s; guest time asked for: "
          f"{len(points)} layouts x {CALIBRATION_DURATION:g} s = "
          f"{len(points) * CALIBRATION_DURATION:g} guest s (plus each run's setup)")
    arg = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("OUT")
    if arg and (Path(arg) / "observations.jsonl").is_file():
        cal, total, n = guest_wall(Path(arg))
        print(f"in {arg}: {n} calibration jobs took {cal:.1f} s of the spawn jobs' {total:.1f} s "
              "wall time (boots and each guest's first job excluded)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
