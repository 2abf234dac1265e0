"""Benchmark: the spawn calibration's extra wall time on the host: the simulator's work counts
for every calibration layout (orchestrator.calibration, baseline model) and the work model fit
with its leave-one-layout-out refits. The rates fed to the fit here are placeholders (1 us per
VMA): only its running time is measured. The guest side costs CALIBRATION_DURATION guest
seconds per layout plus the program's setup (printed as the guest seconds asked for).
Prints figures; asserts nothing. Run: python -m tools.bench_calibration"""

from __future__ import annotations

import time

from orchestrator.calibration import CALIBRATION_DURATION, calibration_scenarios
from simulator.cost import CalPoint, calibrate
from simulator.predict import build_parent, records
from simulator.scenario import from_dict


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
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
