"""The short console summary printed at the end of compare and vm-test."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from .verdicts import FAILING


def print_summary(df: pd.DataFrame, out: Path, file=sys.stdout) -> None:
    if df.empty:
        print(f"forkdiff: no comparisons in {out}", file=file)
        return
    counts = df.groupby(["axis", "suite", "variant", "verdict"]).size().unstack("verdict", fill_value=0)
    print(counts.to_string(), file=file)
    bad = df[df["verdict"].isin(FAILING)]
    for r in bad.head(20).itertuples():
        print(f"  {r.verdict.upper()}: {r.suite}/{r.variant} vs model {r.model or '-'}: {r.scenario} "
              f"{r.measurement} {r.key} observed={r.observed} predicted={r.predicted} {r.detail}"[:300],
              file=file)
    if len(bad) > 20:
        print(f"  ... and {len(bad) - 20} more (see {out}/verdicts.jsonl)", file=file)
    all_skipped = df[df["verdict"] == "skipped"]
    skipped = all_skipped[all_skipped["measurement"] == "kernel_vs_simulator"]  # unmodelled tree
    bounded = all_skipped[all_skipped["measurement"] != "kernel_vs_simulator"]
    if len(bounded):  # counts this kernel cannot observe exactly (rules.BULK_RULE)
        print(f"forkdiff: {len(bounded)} comparisons only bounded, not exact "
              f"({bounded.iloc[0]['measurement']}: {str(bounded.iloc[0]['rule'])[:160]}); "
              "outside the bound they fail", file=file)
    scope = ""
    if len(skipped):
        cause = str(skipped.iloc[0]["detail"]).split(";")[0]
        print(f"forkdiff: the simulator does not model this tree: {len(skipped)} jobs' "
              f"kernel-vs-simulator verdicts {cause}", file=file)
        scope = f" (model not used for {len(skipped)} jobs: their verdict is the kernel-only checks)"
    print(f"forkdiff: {len(df)} comparisons, {len(bad)} failing -> {'FAIL' if len(bad) else 'PASS'}{scope}",
          file=file)
