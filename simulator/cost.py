"""Linear cost model: time per fork = c0 + sum_i c_i * op_i over the simulator's operation counts.

Fitted by non-negative least squares on the measurements of ONE variant (forks/s per VMA count
observed in the guest), then used to predict the other variant from that variant's operation
counts alone. Nothing measured on the predicted variant enters the fit; the fitted data is
recorded in the model (`fitted_on`) so the report can say what it was fitted on."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import nnls


@dataclass
class CostModel:
    features: list[str]
    intercept: float  # seconds per fork independent of the op counts
    coef: dict[str, float]  # seconds per unit of each op count
    fitted_on: dict = field(default_factory=dict)  # {"variant": ..., "vmas": [...], "points": n}

    def seconds_per_fork(self, ops: Mapping[str, float]) -> float:
        return self.intercept + sum(self.coef[f] * float(ops.get(f, 0.0)) for f in self.features)

    def forks_per_s(self, ops: Mapping[str, float]) -> float:
        return 1.0 / self.seconds_per_fork(ops)

    def to_dict(self) -> dict:
        return {"features": self.features, "intercept": self.intercept, "coef": self.coef,
                "fitted_on": self.fitted_on}


def fit(ops: Sequence[Mapping[str, float]], forks_per_s: Sequence[float], features: Sequence[str],
        fitted_on: dict | None = None) -> CostModel:
    """Fit seconds/fork on op counts with non-negative coefficients (costs cannot be negative).

    Features that are constant across the fitting points cannot be told apart from the
    intercept; they are dropped so the fit stays identifiable."""
    if len(ops) != len(forks_per_s) or not ops:
        raise ValueError("fit needs one op-count mapping per measurement, and at least one")
    y = np.array([1.0 / float(r) for r in forks_per_s])
    cols = []
    used: list[str] = []
    for f in features:
        col = np.array([float(o.get(f, 0.0)) for o in ops])
        if np.ptp(col) > 0:
            cols.append(col)
            used.append(f)
    # Scale columns for conditioning; the intercept is a column of ones.
    X = np.column_stack([np.ones(len(y))] + cols) if cols else np.ones((len(y), 1))
    scale = X.max(axis=0)
    scale[scale == 0] = 1.0
    beta, _ = nnls(X / scale, y)
    beta = beta / scale
    return CostModel(features=used, intercept=float(beta[0]),
                     coef={f: float(b) for f, b in zip(used, beta[1:], strict=True)},
                     fitted_on=dict(fitted_on or {}))
