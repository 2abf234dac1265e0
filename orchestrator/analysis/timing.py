"""Timings, variant vs variant: forks/s per VMA count for baseline and patched, the improvement in
percent with a confidence interval from repeats, and Welch's t-test (as mmtests compares runs).

Input: a DataFrame with one row per repeat: columns variant, vmas, forks_per_s."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

CONFIDENCE = 0.95
ALPHA = 0.05
# Under -icount two runs of the same job on fresh guests give nearly the same forks/s: measured
# on the 6.12 perf kernels within 0.22 % (the same kernel on two boots) and 0.33 % (a
# comment-only patch against the tree as it is), and on 7.2 a comment-only patch 0.80 % slower
# than the tree as it is at 121 VMAs (0.04 % and less from 421 up); the spread comes from the
# guest's state at boot, not from the host. A one-run difference below this is not a difference.
ICOUNT_REPEAT_PCT = 1.0


def _mean_ci(values: np.ndarray) -> tuple[float, float]:
    """Mean and half-width of its CONFIDENCE interval (Student t); 0 half-width for one value."""
    n = len(values)
    mean = float(np.mean(values))
    if n < 2:
        return mean, 0.0
    sem = float(np.std(values, ddof=1)) / math.sqrt(n)
    from scipy import stats  # here, not at import: scipy.stats is 0.5 s of every CLI start

    return mean, float(stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1) * sem)


def improvement_table(rows: pd.DataFrame, base: str = "baseline", new: str = "patched",
                      deterministic: bool = False) -> pd.DataFrame:
    """One row per VMA count present for both variants: means, CIs, improvement % (with a CI by
    the delta method on the ratio of means) and Welch's t-test p-value with its verdict.

    deterministic: the rates come from QEMU -icount (virtual time), where repeats of a run
    agree within ICOUNT_REPEAT_PCT; with a single run per side there is nothing for Welch's
    test to estimate, and the comparison is direct: rates further apart than
    ICOUNT_REPEAT_PCT are a real difference (p = 0), closer ones none (p = 1). With repeats,
    Welch's test is used as always."""
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
            from scipy import stats

            p = float(stats.ttest_ind(b, a, equal_var=False).pvalue)
        elif len(a) >= 2 and len(b) >= 2:
            p = 0.0 if ma != mb else 1.0  # identical repeats on each side: no variance at all
        elif deterministic:
            p = 0.0 if abs(mb / ma - 1.0) * 100.0 > ICOUNT_REPEAT_PCT else 1.0
        else:
            p = float("nan")
        test = "Welch t-test" if len(a) >= 2 and len(b) >= 2 else \
            f"one -icount run (differs if > {ICOUNT_REPEAT_PCT:g}%)" if deterministic else "none (one run)"
        out.append({
            "vmas": int(vmas),
            f"{base}_forks_per_s": ma, f"{base}_ci": ha, f"{base}_n": len(a),
            f"{new}_forks_per_s": mb, f"{new}_ci": hb, f"{new}_n": len(b),
            "improvement_pct": imp, "improvement_ci": imp_hw,
            "welch_p": p, "test": test,
            "significant": bool(p < ALPHA) if not math.isnan(p) else False,
        })
    return pd.DataFrame(out)
