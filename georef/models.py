"""Transform models beyond a 3x3 matrix: polynomials of order 1-3 and thin-plate splines.

They map target pixel coordinates to map coordinates, as GDAL's GCP
transformers do (``MAX_GCP_ORDER`` and ``SRC_METHOD=GCP_TPS``), so that the
held-out residuals reported here describe the warp GDAL will apply.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from georef import geometry
from georef.errors import MatchingError

#: Models fitted to the pooled inlier tie points and applied through GCPs.
POLYNOMIAL_ORDERS = {"poly1": 1, "poly2": 2, "poly3": 3}
WARP_MODELS = (*POLYNOMIAL_ORDERS, "tps")


def _terms(points: np.ndarray, order: int) -> np.ndarray:
    x, y = points[:, 0], points[:, 1]
    cols = [x**i * y**j for n in range(order + 1) for i in range(n, -1, -1) for j in [n - i]]
    return np.column_stack(cols)


def min_points(name: str) -> int:
    """Fewest tie points that determine a model."""
    if name == "tps":
        return 3
    order = POLYNOMIAL_ORDERS[name]
    return (order + 1) * (order + 2) // 2


@dataclass
class Polynomial:
    """A 2-D polynomial of order 1-3, fitted in normalised coordinates for conditioning.

    Attributes:
        order: 1 to 3.
        coef: (terms, 2) coefficients for x and y.
        centre: (2,) mean of the source points.
        scale: their spread, so normalised coordinates are about unit size.
    """

    order: int
    coef: np.ndarray
    centre: np.ndarray
    scale: float

    @classmethod
    def fit(cls, src: np.ndarray, dst: np.ndarray, order: int) -> "Polynomial":
        centre = src.mean(axis=0)
        scale = float(np.abs(src - centre).max()) or 1.0
        design = _terms((src - centre) / scale, order)
        coef, *_ = np.linalg.lstsq(design, dst, rcond=None)
        return cls(order, coef, centre, scale)

    def apply(self, points: np.ndarray) -> np.ndarray:
        """(N, 2) source -> (N, 2) destination."""
        return _terms((np.asarray(points, np.float64) - self.centre) / self.scale, self.order) @ self.coef


@dataclass
class ThinPlateSpline:
    """An interpolating thin-plate spline (exact at its control points, like GDAL's GCP_TPS).

    Attributes:
        control: (N, 2) normalised control points.
        weights: (N + 3, 2) kernel weights, then the affine part.
        centre, scale: normalisation of the source coordinates.
    """

    control: np.ndarray
    weights: np.ndarray
    centre: np.ndarray
    scale: float

    @staticmethod
    def _kernel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        r2 = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(r2 > 0, r2 * np.log(np.sqrt(r2)), 0.0)

    @classmethod
    def fit(cls, src: np.ndarray, dst: np.ndarray) -> "ThinPlateSpline":
        centre = src.mean(axis=0)
        scale = float(np.abs(src - centre).max()) or 1.0
        p = (src - centre) / scale
        n = len(p)
        affine = np.column_stack([np.ones(n), p])
        system = np.zeros((n + 3, n + 3))
        system[:n, :n] = cls._kernel(p, p)
        system[:n, n:] = affine
        system[n:, :n] = affine.T
        rhs = np.vstack([dst, np.zeros((3, 2))])
        try:
            weights = np.linalg.solve(system, rhs)
        except np.linalg.LinAlgError:  # repeated or collinear points: the least-squares solution
            weights = np.linalg.lstsq(system, rhs, rcond=None)[0]
        return cls(p, weights, centre, scale)

    def apply(self, points: np.ndarray) -> np.ndarray:
        p = (np.asarray(points, np.float64) - self.centre) / self.scale
        n = len(self.control)
        return self._kernel(p, self.control) @ self.weights[:n] + np.column_stack([np.ones(len(p)), p]) @ self.weights[n:]


def fit_model(name: str, src: np.ndarray, dst: np.ndarray) -> Polynomial | ThinPlateSpline:
    """Least-squares (or interpolating, for ``tps``) fit of a warp model.

    Raises:
        MatchingError: fewer tie points than the model needs.
    """
    if len(src) < min_points(name):
        raise MatchingError(f"only {len(src)} tie points; the {name} model needs at least {min_points(name)}")
    if name == "tps":
        return ThinPlateSpline.fit(src, dst)
    return Polynomial.fit(src, dst, POLYNOMIAL_ORDERS[name])


def fit_model_robust(
    name: str, src: np.ndarray, dst: np.ndarray, start: np.ndarray, threshold: float, iterations: int = 5
) -> tuple[Polynomial | ThinPlateSpline, np.ndarray]:
    """Fit a warp model to matches, growing the inlier set from a robust 3x3 start.

    Inliers are chosen with a polynomial (order 3 for ``tps``): an interpolating
    spline has no residual at its own points and cannot reject outliers.

    Args:
        name: a :data:`WARP_MODELS` name.
        src, dst: (N, 2) matches, in units where ``threshold`` applies.
        start: (3, 3) robust fit giving the first inliers.
        threshold: inlier distance.

    Returns:
        The model fitted to the final inliers, and the (N,) inlier flags.
    """
    selector = "poly3" if name == "tps" else name
    inliers = np.linalg.norm(geometry.apply(start, src) - dst, axis=1) < threshold
    for _ in range(iterations):
        model = fit_model(selector, src[inliers], dst[inliers])
        grown = np.linalg.norm(model.apply(src) - dst, axis=1) < threshold
        if (grown == inliers).all():
            break
        inliers = grown
    return fit_model(name, src[inliers], dst[inliers]), inliers


def held_out_errors(name: str, src: np.ndarray, dst: np.ndarray, folds: int = 5, seed: int = 0) -> np.ndarray:
    """Distance of each point to the model fitted without its fold (k-fold cross-validation).

    For a 3x3 model name (``affine``, ``homography``...) the least-squares fit is used.
    """
    from georef.fitting import MODELS, least_squares

    n = len(src)
    fold = np.random.default_rng(seed).permutation(n) % folds
    errors = np.full(n, np.nan)
    for k in range(folds):
        train, test = fold != k, fold == k
        if name in MODELS:
            predicted = geometry.apply(least_squares(name, src[train], dst[train]), src[test])
        else:
            predicted = fit_model(name, src[train], dst[train]).apply(src[test])
        errors[test] = np.linalg.norm(predicted - dst[test], axis=1)
    return errors


def compare_models(src: np.ndarray, dst: np.ndarray, names: tuple[str, ...], unit_per_px: float) -> dict:
    """Held-out RMSE, CE90 and max per model, in pixels, for the report.

    Args:
        src: (N, 2) target pixels of the inlier tie points.
        dst: (N, 2) their map positions.
        names: models to compare; those needing more points than there are are skipped.
        unit_per_px: map units per target pixel, to express errors in pixels.
    """
    out = {}
    for name in names:
        need = min_points(name) if name in WARP_MODELS else 4
        if len(src) < 2 * need:
            continue
        e = held_out_errors(name, src, dst) / unit_per_px
        out[name] = {"rmse_px": float(np.sqrt(np.mean(e**2))), "ce90_px": float(np.percentile(e, 90)),
                     "max_px": float(e.max())}
    return out
