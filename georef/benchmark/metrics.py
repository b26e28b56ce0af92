"""Error of an estimated transform against the truth, and summaries over cases."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from georef import geometry

#: Pixel thresholds of the success rates.
THRESHOLDS_PX = (0.5, 1.0, 3.0, 5.0, 10.0)
#: Cases that pass the quality gate with a larger error are "wrong but accepted".
WRONG_PX = 3.0


#: Maps (N, 2) points of an estimate's CRS into the truth's; None where the two are one.
Projection = Callable[[np.ndarray], np.ndarray] | None


def _distances(estimate: np.ndarray, truth: np.ndarray, points: np.ndarray, project: Projection) -> np.ndarray:
    mapped = geometry.apply(estimate, points)
    return np.linalg.norm((mapped if project is None else project(mapped)) - geometry.apply(truth, points), axis=1)


def corner_error(estimate: np.ndarray, truth: np.ndarray, width: float, height: float,
                 project: Projection = None) -> float:
    """Mean distance, in map units, between the four target corners mapped by ``estimate`` (through ``project``
    where it lands in another CRS) and by ``truth``."""
    return float(_distances(estimate, truth, geometry.corners(width, height), project).mean())


def check_point_rmse(
    estimate: np.ndarray, truth: np.ndarray, width: float, height: float, valid: np.ndarray | None = None, n: int = 10,
    project: Projection = None,
) -> float:
    """RMSE, in map units, over an n x n grid of check points inside the target's valid area."""
    pts = geometry.grid_points(width, height, n)
    if valid is not None:
        inside = valid[np.clip(pts[:, 1].astype(int), 0, valid.shape[0] - 1),
                       np.clip(pts[:, 0].astype(int), 0, valid.shape[1] - 1)]
        pts = pts[inside] if inside.any() else pts
    return float(np.sqrt(np.mean(_distances(estimate, truth, pts, project) ** 2)))


def affine_text(matrix: np.ndarray, width: int, height: int) -> str:
    """The six affine coefficients (rasterio order) of a target pixel -> map transform, for ``cases.csv``."""
    affine = matrix if np.allclose(matrix[2], (0, 0, 1)) else geometry.best_affine(matrix, width, height)
    return " ".join(f"{v:.12g}" for v in affine[:2].ravel())


def score(case, estimate: np.ndarray, project: Projection = None) -> dict:
    """The ``cases.csv`` columns that judge an estimate of a :class:`~georef.benchmark.cases.Case`: its error
    at the corners and at check points where the case has a truth (in the reference's CRS; ``project`` maps
    an estimate in another CRS into it), and the estimate itself."""
    scores = {"estimate": affine_text(estimate, case.width, case.height)}
    if case.truth is not None:
        err_m = corner_error(estimate, case.truth, case.width, case.height, project)
        rmse_m = check_point_rmse(estimate, case.truth, case.width, case.height, case.valid, project=project)
        scores.update(error_px=err_m / case.metres_per_px, error_m=err_m, checkpoint_rmse_px=rmse_m / case.metres_per_px)
    return scores


def no_fit_error(case) -> float:
    """The error of a case where nothing was fitted: infinite, or NaN where the case has no truth."""
    return float("inf") if case.truth is not None else float("nan")


def has_error(row: dict) -> bool:
    """A ``cases.csv`` row carries a true error (its case had a truth, and something was fitted or refused)."""
    return row.get("error_px") not in ("", None, "nan")


def summarise(errors_px: np.ndarray, accepted: np.ndarray, seconds: np.ndarray, max_px: float = 10.0,
              estimates_px: np.ndarray | None = None, errors_m: np.ndarray | None = None) -> dict:
    """Success rates, median and p90 error, AUC up to ``max_px``, time, wrong-but-accepted cases, and
    the calibration of the estimated accuracy.

    Args:
        errors_px: (N,) error per case; NaN where the matcher produced no transform.
        accepted: (N,) bool, the case passed the quality gate.
        seconds: (N,) time per case.
        estimates_px: (N,) estimated CE90 per case (NaN where none); ``within_estimate`` is the share of
            accepted cases with an estimate whose true error is at most that estimate.
        errors_m: (N,) the same errors in metres, for ``median_m`` (a target pixel's ground size varies
            between regimes).
    """
    # A case without any transform counts as an infinite error: below no threshold.
    e = np.where(np.isnan(errors_px), np.inf, errors_px)
    n = len(e)
    out = {"cases": n}
    for t in THRESHOLDS_PX:
        out[f"within_{t:g}px"] = float(np.mean(e < t)) if n else 0.0
    with np.errstate(invalid="ignore"):  # interpolating between two infinities gives NaN: it is inf
        out["median_px"] = float(np.nan_to_num(np.median(e), nan=np.inf, posinf=np.inf)) if n else float("nan")
        out["p90_px"] = float(np.nan_to_num(np.percentile(e, 90), nan=np.inf, posinf=np.inf)) if n else float("nan")
        if errors_m is not None:
            metres = np.where(np.isnan(errors_m), np.inf, errors_m)
            out["median_m"] = float(np.nan_to_num(np.median(metres), nan=np.inf, posinf=np.inf)) if n else float("nan")
    # Area under the cumulative error curve up to max_px, normalised to [0, 1].
    grid = np.linspace(0, max_px, 201)
    curve = [np.mean(e < g) for g in grid] if n else [0.0]
    out[f"auc_{max_px:g}px"] = float(np.trapezoid(curve, grid) / max_px) if n else 0.0
    out["accepted"] = int(accepted.sum())
    out["refused"] = int(n - accepted.sum())
    out["wrong_but_accepted"] = int(np.sum(accepted & (e > WRONG_PX)))
    # What a user is given: the within_* shares also count refused cases whose fit was right.
    out["accepted_within_1px"] = float(np.mean(accepted & (e < 1))) if n else 0.0
    if estimates_px is not None:
        judged = accepted & np.isfinite(estimates_px)
        out["within_estimate"] = float(np.mean(e[judged] <= estimates_px[judged])) if judged.any() else float("nan")
        out["median_estimate_px"] = float(np.median(estimates_px[judged])) if judged.any() else float("nan")
    out["median_s"] = float(np.median(seconds)) if n else float("nan")
    return out


def summarise_rows(scored: list[dict]) -> dict:
    """:func:`summarise` over ``cases.csv`` rows that carry a true error (see :func:`has_error`)."""
    return summarise(
        np.array([float(r["error_px"]) for r in scored]),
        np.array([r["accepted"] == "True" for r in scored], bool),
        np.array([float(r["total_s"]) for r in scored]),
        estimates_px=np.array([float(r.get("estimated_ce90_px") or "nan") for r in scored]),
        errors_m=np.array([float(r.get("error_m") or "nan") for r in scored]),
    )
