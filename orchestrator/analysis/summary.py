"""The short console summary printed at the end of compare and vm-test."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from ..results.verdicts import FAILING
from . import triage


def print_summary(df: pd.DataFrame, out: Path, file=sys.stdout) -> None:
    if df.empty:
        print(f"forkdiff: no comparisons in {out}", file=file)
        return
    counts = df.groupby(["axis", "suite", "variant", "verdict"]).size().unstack("verdict", fill_value=0)
    print(counts.to_string(), file=file)
    bad = df[df["verdict"].isin(FAILING)]
    first = triage.first_divergence(df)
    if first is not None:
        print(f"first divergence: {triage.describe_first(first)}"[:400], file=file)
        grouped = triage.groups(df)
        print(f"{len(bad)} failing rows in {len(grouped)} groups:", file=file)
        rules: list[str] = []
        for g in grouped[:20]:
            print(f"  {triage.describe(g)}"[:300], file=file)
            if g["rule"] not in rules:
                rules.append(g["rule"])
        if len(grouped) > 20:
            print(f"  ... and {len(grouped) - 20} more groups (see {out}/verdicts.jsonl)", file=file)
        for rule in rules:
            print(f"  rule: {rule}"[:300], file=file)
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
