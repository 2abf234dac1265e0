"""The timing work model: seconds per fork = sum_f c_f * feature_f, over the work counts of
simulator.work (units both dup_mmap variants share), with non-negative costs c_f fitted on
the measurements of ONE kernel (the baseline) and used to predict the other from its own work
counts. Nothing measured on the predicted kernel enters the fit; the model records what it
was fitted on (`fitted_on`), its design's condition number, its leave-one-layout-out errors
and the band they validate."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

# ------------------------------------------------------------------ calibrated work model
# Cost features: sums of the work counts of simulator.work.fork_work(), in units both dup_mmap
# variants share, each priced by one fitted cost (seconds per unit). Work that both variants
# do the same amount of for the same layout (the fork's fixed cost, vm_area_dup, exit's
# remove_vma, anon_vma_fork, page tables) still has a feature so that the calibration
# layouts, which vary it, are fitted without bias.
FEATURES: dict[str, tuple[str, ...]] = {
    "fork": ("forks",),  # copy_process, exec-image VMAs' fixed work, exit, wait: per fork
    "vma_visit": ("iter_vmas",),  # dup_mmap's loop body for every parent VMA
    "vma_copy": ("vmas_copied",),  # vm_area_dup + lock, link, exit's unmap + remove_vma
    "iter_slot": ("iter_slots", "exit_iter_slots"),  # iterator steps over slots
    "iter_leaf": ("iter_leaves", "exit_iter_leaves"),  # iterator moves between leaves
    "maple_slot": ("slot_writes", "build_slots", "bnode_slots", "dup_children"),
    "maple_node": ("walk_nodes", "node_builds", "gap_updates", "dup_nodes"),
    "maple_object": ("nodes_allocated", "nodes_freed", "exit_nodes", "alloc_calls"),
    "anon_vma_fork": ("anon_vma_forks", "anon_vma_allocs", "avc_allocs", "exit_avcs"),
    "pte": ("ptes_copied", "exit_ptes"),
    "pt_page": ("pt_pages", "exit_pt_pages"),
    "file_vma": ("file_vmas",),
}
# The features fitted by default. maple_object, iter_leaf and pt_page are counted and recorded
# but not fitted: in every layout of the calibration design (orchestrator.run.calibration) they
# move with maple_node or the per-fork constant (the design's condition number is about 1,000
# with them and about 60 without), and merging them into another unit would price a slab
# allocation like a node walk. Their cost is absorbed by the features they move with.
DEFAULT_FEATURES = ("fork", "vma_visit", "vma_copy", "iter_slot", "maple_slot", "maple_node",
                    "anon_vma_fork", "pte", "file_vma")


def feature_vector(work: Mapping[str, float], names: Sequence[str]) -> np.ndarray:
    return np.array([sum(float(work.get(k, 0)) for k in FEATURES[n]) for n in names])


@dataclass
class CalPoint:
    """One baseline measurement the work model is fitted on."""

    layout: str  # the layout family (leave-one-layout-out drops all its points at once)
    vmas: int
    forks_per_s: float
    work: Mapping[str, float]


@dataclass
class WorkModel:
    """seconds/fork = sum_f coef[f] * feature_f(work), coefficients >= 0, fitted by NNLS on
    the RELATIVE error of the baseline's calibration points (each row divided by its
    observed seconds/fork, so that a 21-VMA point weighs as much as a 51,221-VMA one)."""

    features: list[str]
    coef: dict[str, float]
    fitted_on: dict = field(default_factory=dict)
    condition_number: float = float("nan")
    points: list[dict] = field(default_factory=list)  # per point: fitted and LOLO errors
    lolo: dict[str, float] = field(default_factory=dict)  # layout -> max |LOLO error| %
    band_pct: float = float("nan")
    unidentified: list[str] = field(default_factory=list)  # layouts LOLO cannot hold out

    def seconds_per_fork(self, work: Mapping[str, float]) -> float:
        x = feature_vector(work, self.features)
        return float(x @ np.array([self.coef[f] for f in self.features]))

    def forks_per_s(self, work: Mapping[str, float]) -> float:
        return 1.0 / self.seconds_per_fork(work)

    def transfer(self, observed_forks_per_s: float, work_observed: Mapping[str, float],
                 work_target: Mapping[str, float]) -> float:
        """forks/s of a kernel doing work_target, from a measured kernel doing work_observed
        on the same layout: the observed seconds/fork minus the modelled cost of the work
        only the observed one does plus that of the work only the target does (work both
        do cancels, whatever its modelled cost)."""
        t = 1.0 / observed_forks_per_s + self.seconds_per_fork(work_target) \
            - self.seconds_per_fork(work_observed)
        return 1.0 / t

    @classmethod
    def from_dict(cls, d: Mapping) -> WorkModel:
        """The model to_dict() wrote (prices and what it was fitted on; enough to predict)."""
        return cls(list(d["features"]), {str(k): float(v) for k, v in d["coef"].items()},
                   dict(d.get("fitted_on") or {}), float(d.get("condition_number", float("nan"))),
                   band_pct=float(d.get("band_pct", float("nan"))))

    def to_dict(self) -> dict:
        return {"kind": "work", "features": self.features, "coef": self.coef,
                "feature_units": {f: list(FEATURES[f]) for f in self.features},
                "fitted_on": self.fitted_on, "condition_number": self.condition_number,
                "points": self.points, "lolo_max_error_pct": self.lolo, "band_pct": self.band_pct,
                "lolo_not_identified": self.unidentified}


def _nnls_rel(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Non-negative beta minimising sum(((X beta - y) / y)^2)."""
    W = X / y[:, None]
    scale = np.linalg.norm(W, axis=0)
    scale[scale == 0] = 1.0
    from scipy.optimize import nnls  # here, not at import: 0.5 s of every CLI start

    beta, _ = nnls(W / scale, np.ones(len(y)))
    return beta / scale


def _rank(X: np.ndarray, y: np.ndarray) -> int:
    W = X / y[:, None]
    W = W / np.where(np.linalg.norm(W, axis=0) == 0, 1.0, np.linalg.norm(W, axis=0))
    return int(np.linalg.matrix_rank(W, tol=1e-6))


def condition_number(X: np.ndarray, y: np.ndarray) -> float:
    """Of the relative-error design with unit-norm columns (collinearity, not units)."""
    W = X / y[:, None]
    W = W / np.where(np.linalg.norm(W, axis=0) == 0, 1.0, np.linalg.norm(W, axis=0))
    return float(np.linalg.cond(W))


BAND_MARGIN_PCT = 1.0  # added to the largest leave-one-layout-out error


def calibrate(points: Sequence[CalPoint], features: Sequence[str] = DEFAULT_FEATURES,
              fitted_on: dict | None = None) -> WorkModel:
    """Fit the work model on baseline points; report its condition number, the in-sample
    and the leave-one-layout-out (LOLO) relative errors, and the validated band: the
    largest LOLO error over all points plus BAND_MARGIN_PCT. A layout that alone identifies
    some feature (the rest of the design loses rank without it) cannot be held out; it is
    listed in `unidentified` and has no LOLO error."""
    if len(points) < 2:
        raise ValueError("calibration needs at least two measured points")
    y = np.array([1.0 / p.forks_per_s for p in points])
    Xall = np.array([feature_vector(p.work, features) for p in points])
    used = [f for i, f in enumerate(features) if np.ptp(Xall[:, i]) > 0 or f == "fork"]
    X = np.array([feature_vector(p.work, used) for p in points])
    beta = _nnls_rel(X, y)
    model = WorkModel(used, {f: float(b) for f, b in zip(used, beta, strict=True)},
                      dict(fitted_on or {}), condition_number(X, y))
    layouts = sorted({p.layout for p in points})
    lolo_err: dict[int, float] = {}
    full_rank = _rank(X, y)
    for lay in layouts:
        keep = np.array([p.layout != lay for p in points])
        if keep.sum() < 2 or _rank(X[keep], y[keep]) < full_rank:
            # without this layout some feature is not identified any more: its points cannot
            # be predicted by the others (reported as None, not part of the band)
            model.unidentified.append(lay)
            continue
        b = _nnls_rel(X[keep], y[keep])
        for i in np.flatnonzero(~keep):
            lolo_err[i] = (y[i] / float(X[i] @ b) - 1.0) * 100.0  # forks/s error, %
    pred = X @ beta
    for i, p in enumerate(points):
        model.points.append({"layout": p.layout, "vmas": p.vmas, "observed": p.forks_per_s,
                             "fitted": float(1.0 / pred[i]),
                             "error_pct": float((y[i] / pred[i] - 1.0) * 100.0),
                             "lolo_error_pct": lolo_err.get(i)})
    for lay in layouts:
        errs = [abs(e["lolo_error_pct"]) for e in model.points
                if e["layout"] == lay and e["lolo_error_pct"] is not None]
        if errs:
            model.lolo[lay] = max(errs)
    model.band_pct = (max(model.lolo.values()) if model.lolo else float("nan")) + BAND_MARGIN_PCT
    return model
