"""Does the perf profile have to be a kernel of its own? Runs the spawn suite on the faults and
the perf kernels of both variants (same VMA counts, same duration, -icount) into two folders,
or reads existing folders, and prints the seed table's improvement per count (patched vs
baseline forks/s) on each profile and how far apart they are, against the band a timing
verdict judges a measured rate by (orchestrator.analysis.spawn_model.SAME_WORK_BAND_PCT).
Prints figures; asserts nothing (docs/profiles.md has the numbers and the decision).

    python3 tools/bench_profiles.py                       # run both, DURATION=1, seed counts
    python3 tools/bench_profiles.py --faults DIR --perf DIR   # read two finished runs
Knobs: VMAS=21,121,... DURATION=1 (guest seconds per measurement), KERNEL_TREE= as usual."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from orchestrator.analysis.report import seed_table
from orchestrator.analysis.spawn_model import SAME_WORK_BAND_PCT
from orchestrator.analysis.timing import improvement_table
from orchestrator.run.suites import SPAWN_VMAS


def run_profile(profile: str, out: Path, vmas: str, duration: str) -> float:
    t0 = time.monotonic()
    cmd = [sys.executable, "-m", "orchestrator", "run", "--suite", "spawn", "--profile", profile,
           "--vmas", vmas, "--duration", duration, "--no-calibrate", "--out", str(out)]
    print("$ " + " ".join(cmd), flush=True)
    rc = subprocess.call(cmd)
    if rc != 0:
        print(f"{profile}: exit status {rc} (partial results in {out})", flush=True)
    return time.monotonic() - t0


def rates(folders: Path | list[Path]) -> tuple[pd.DataFrame, str]:
    """(variant, vmas, forks_per_s) of the folders' spawn measurements at the seed's layout, and
    the profile they were measured on (a profile's variants may come from separate folders)."""
    rows, profiles = [], set()
    for folder in [folders] if isinstance(folders, Path) else folders:
        if not (folder / "observations.jsonl").is_file():
            continue
        for line in open(folder / "observations.jsonl"):
            r = json.loads(line)
            if r.get("suite") != "spawn" or r.get("measurement") != "spawn" or r.get("error"):
                continue
            if not r["scenario"]["name"].startswith("total-"):
                continue
            rows.append({"variant": r["variant"], "vmas": int(r["scenario"]["total_vmas"]),
                         "forks_per_s": float(r["value"]), "icount": bool(r.get("icount"))})
            profiles.add(r.get("profile"))
    return pd.DataFrame(rows), "/".join(sorted(map(str, profiles))) or "?"


def _improvements(folder: list[Path]) -> pd.DataFrame:
    """improvement_table() of a folder, indexed by VMA count (empty until both variants ran)."""
    frame = rates(folder)[0]
    t = improvement_table(frame, deterministic=True) if len(frame) else pd.DataFrame()
    return t.set_index("vmas") if "vmas" in t else pd.DataFrame(index=pd.Index([], name="vmas"))


def table(faults: list[Path], perf: list[Path]) -> pd.DataFrame:
    seed = seed_table()
    seed_imp = dict(zip(seed["vmas"], seed["improvement_pct"], strict=True))
    out = []
    tf, tp = _improvements(faults), _improvements(perf)
    raw = {tag: rates(folder)[0] for tag, folder in (("faults", faults), ("perf", perf))}
    counts = sorted({int(v) for f in raw.values() if len(f) for v in f["vmas"]})
    for n in counts:
        row = {"vmas": n, "seed_imp_pct": seed_imp.get(n)}
        for tag, t in (("faults", tf), ("perf", tp)):
            f = raw[tag]
            for variant, col in (("baseline", "base"), ("patched", "patched")):
                sel = f[(f["variant"] == variant) & (f["vmas"] == n)] if len(f) else f
                if len(sel):  # a count one variant has not reached yet
                    row[f"{tag}_{col}"] = float(sel["forks_per_s"].mean())
            if n in t.index:
                row.update({f"{tag}_base": t.loc[n, "baseline_forks_per_s"],
                            f"{tag}_patched": t.loc[n, "patched_forks_per_s"],
                            f"{tag}_imp_pct": t.loc[n, "improvement_pct"]})
        if "faults_imp_pct" in row and "perf_imp_pct" in row:
            rf, rp = 1 + row["faults_imp_pct"] / 100, 1 + row["perf_imp_pct"] / 100
            # the perf kernel's patched rate predicted from its baseline x the faults ratio
            row["ratio_diff_pct"] = (rf / rp - 1) * 100
            row["imp_diff_pp"] = row["faults_imp_pct"] - row["perf_imp_pct"]
            row["within_band"] = abs(row["ratio_diff_pct"]) <= SAME_WORK_BAND_PCT
        if "faults_base" in row and "perf_base" in row:
            row["faults_vs_perf_base_pct"] = (row["faults_base"] / row["perf_base"] - 1) * 100
        out.append(row)
    return pd.DataFrame(out)


def show(t: pd.DataFrame) -> None:
    def f(v, fmt):
        if v is None or (isinstance(v, float) and pd.isna(v)):
            return "-".rjust(int("".join(c for c in fmt.split(".")[0] if c.isdigit()) or 1))
        return format(v, fmt)

    print(f"{'VMAs':>6} {'seed %':>7} | {'faults base':>11} {'patched':>9} {'imp %':>7} | "
          f"{'perf base':>9} {'patched':>9} {'imp %':>7} | {'ratio diff %':>12} {'in band':>7} | "
          f"{'faults/perf base %':>18}")
    for _, r in t.iterrows():
        print(f"{int(r['vmas']):>6} {f(r.get('seed_imp_pct'), '7.1f')} | "
              f"{f(r.get('faults_base'), '11.1f')} {f(r.get('faults_patched'), '9.1f')} "
              f"{f(r.get('faults_imp_pct'), '+7.2f')} | {f(r.get('perf_base'), '9.1f')} "
              f"{f(r.get('perf_patched'), '9.1f')} {f(r.get('perf_imp_pct'), '+7.2f')} | "
              f"{f(r.get('ratio_diff_pct'), '+12.2f')} {str(r.get('within_band', '-')).replace('nan', '-'):>7} | "
              f"{f(r.get('faults_vs_perf_base_pct'), '+18.1f')}")
    both = t.dropna(subset=["ratio_diff_pct"]) if "ratio_diff_pct" in t else t.iloc[0:0]
    if len(both):
        worst = both.loc[both["ratio_diff_pct"].abs().idxmax()]
        print(f"band +-{SAME_WORK_BAND_PCT:g} %: {sum(bool(x) for x in both['within_band'])} of {len(both)} "
              f"counts within; largest difference {worst['ratio_diff_pct']:+.2f} % at "
              f"{int(worst['vmas'])} VMAs")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--faults", type=Path, action="append",
                   help="spawn run(s) on the faults profile (repeatable: variants run apart)")
    p.add_argument("--perf", type=Path, action="append",
                   help="spawn run(s) on the perf profile (repeatable)")
    args = p.parse_args()
    vmas = os.environ.get("VMAS") or ",".join(map(str, SPAWN_VMAS))
    duration = os.environ.get("DURATION") or "1"
    folders = {"faults": args.faults, "perf": args.perf}
    for profile, folder in folders.items():
        if folder is None:
            new = Path(tempfile.mkdtemp(prefix=f"forkdiff-bench-profiles-{profile}-"))
            secs = run_profile(profile, new, vmas, duration)
            print(f"{profile}: spawn suite {secs:.0f} s -> {new}", flush=True)
            folders[profile] = [new]
    for profile, folder in folders.items():
        frame, seen = rates(folder)
        print(f"{profile}: {', '.join(map(str, folder))} ({len(frame)} measurements, profile {seen}, "
              f"-icount {bool(len(frame)) and bool(frame['icount'].all())})")
    show(table(folders["faults"], folders["perf"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
