"""Timings, variant vs variant: forks/s per VMA count for baseline and patched, the improvement in
percent with a confidence interval from repeats, and Welch's t-test (as mmtests compares runs).

Input: a DataFrame with one row per repeat: columns variant, vmas, forks_per_s."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

CONFIDENCE = 0.95
ALPHA = 0.05


def _mean_ci(values: np.ndarray) -> tuple[float, float]:
    """Mean and half-width of its CONFIDENCE interval (Student t); 0 half-width for one value."""
    n = len(values)
    mean = float(np.mean(values))
    if n < 2:
        return mean, 0.0
    sem = float(np.std(values, ddof=1)) / math.sqrt(n)
    return mean, float(stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1) * sem)


def improvement_table(rows: pd.DataFrame, base: str = "baseline", new: str = "patched",
                      deterministic: bool = False) -> pd.DataFrame:
    """One row per VMA count present for both variants: means, CIs, improvement % (with a CI by
    the delta method on the ratio of means) and Welch's t-test p-value with its verdict.

    deterministic: the rates come from QEMU -icount (virtual time), where a run's forks/s is
    the same on every repeat; with a single run per side there is nothing for Welch's test
    to estimate, and the comparison is exact: different rates are a real difference (p = 0),
    equal ones none (p = 1). With repeats, Welch's test is used as always."""
    out = []
    for vmas, grp in rows.groupby("vmas", sort=True):
        a = grp.loc[grp["variant"] == base, "forks_per_s"].to_numpy(dtype=float)
        b = grp.loc[grp["variant"] == new, "forks_per_s"].to_numpy(dtype=float)
        if len(a) == 0 or len(b) == 0:
            continue
        ma, ha = _mean_ci(a)
        mb, hb = _mean_ci(b)
        ratio = mb / ma
        # Relative half-widths add in quadrature for a ratio of independent means.
        rel = math.hypot(ha / ma if ma else 0.0, hb / mb if mb else 0.0)
        imp = (ratio - 1.0) * 100.0
        imp_hw = ratio * rel * 100.0
        if len(a) >= 2 and len(b) >= 2 and (np.std(a) > 0 or np.std(b) > 0):
            p = float(stats.ttest_ind(b, a, equal_var=False).pvalue)
        elif len(a) >= 2 and len(b) >= 2:
            p = 0.0 if ma != mb else 1.0  # identical repeats on each side: no variance at all
        elif deterministic:
            p = 0.0 if ma != mb else 1.0
        else:
            p = float("nan")
        test = "Welch t-test" if len(a) >= 2 and len(b) >= 2 else \
            "exact (-icount, one run)" if deterministic else "none (one run)"
        out.append({
            "vmas": int(vmas),
            f"{base}_forks_per_s": ma, f"{base}_ci": ha, f"{base}_n": len(a),
            f"{new}_forks_per_s": mb, f"{new}_ci": hb, f"{new}_n": len(b),
            "improvement_pct": imp, "improvement_ci": imp_hw,
            "welch_p": p, "test": test,
            "significant": bool(p < ALPHA) if not math.isnan(p) else False,
        })
    return pd.DataFrame(out)
