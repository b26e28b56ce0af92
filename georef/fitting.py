"""Robust fitting of a 2-D transform to putative matches.

Affine and homography use OpenCV's MAGSAC++ (USAC). OpenCV's USAC has no
shift or similarity solver, so those use a small MSAC of our own with the same
inlier threshold. Every model ends with a least-squares refit on its inliers.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from georef import geometry
from georef.errors import MatchingError

#: Transform models, from the most to the least constrained.
MODELS = ("shift", "similarity", "affine", "homography")
MIN_POINTS = {"shift": 1, "similarity": 2, "affine": 3, "homography": 4}


@dataclass
class Fit:
    """A fitted transform.

    Attributes:
        model: one of :data:`MODELS`.
        matrix: (3, 3) transform mapping source points onto destination points.
        inliers: (N,) bool inlier flags of the input matches.
        residuals: (N,) float64 distance between mapped source and destination points.
    """

    model: str
    matrix: np.ndarray
    inliers: np.ndarray
    residuals: np.ndarray

    def with_matrix(self, matrix: np.ndarray, src: np.ndarray, dst: np.ndarray, threshold: float) -> "Fit":
        """The same matches judged against another transform (e.g. a refined one)."""
        residuals = np.linalg.norm(geometry.apply(matrix, src) - dst, axis=1)
        return Fit(self.model, matrix, residuals < threshold, residuals)


def least_squares(model: str, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares (3, 3) transform of a 3x3 model mapping ``src`` onto ``dst``."""
    if model == "shift":
        return geometry.translation(*(dst - src).mean(axis=0))
    if model == "similarity":
        return _similarityleast_squares(src, dst)
    if model == "affine":
        return geometry.fit_affine_lstsq(src, dst)
    h, _ = cv2.findHomography(src, dst, 0)
    if h is None:
        raise MatchingError("degenerate tie points: no homography fits them")
    return h


def _similarityleast_squares(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (Umeyama, no reflection)."""
    ms, md = src.mean(axis=0), dst.mean(axis=0)
    s, d = src - ms, dst - md
    a = (s * d).sum()  # sum of x*x' + y*y'
    b = (s[:, 0] * d[:, 1] - s[:, 1] * d[:, 0]).sum()
    denom = max((s**2).sum(), 1e-12)
    ca, sa = a / denom, b / denom
    m = np.array([[ca, -sa, 0.0], [sa, ca, 0.0], [0.0, 0.0, 1.0]])
    m[:2, 2] = md - m[:2, :2] @ ms
    return m


def _msac(model: str, src: np.ndarray, dst: np.ndarray, threshold: float, rng: np.random.Generator, iters: int):
    """MSAC over minimal samples: returns the inlier mask of the best hypothesis."""
    n = len(src)
    k = MIN_POINTS[model]
    best_cost, best_mask = np.inf, np.zeros(n, dtype=bool)
    for _ in range(iters):
        idx = rng.choice(n, size=k, replace=False)
        if model == "similarity" and np.allclose(src[idx[0]], src[idx[1]]):
            continue
        m = least_squares(model, src[idx], dst[idx])
        r2 = ((geometry.apply(m, src) - dst) ** 2).sum(axis=1)
        cost = np.minimum(r2, threshold**2).sum()
        if cost < best_cost:
            best_cost, best_mask = cost, r2 < threshold**2
    return best_mask


def fit_transform(
    src: np.ndarray,
    dst: np.ndarray,
    model: str = "affine",
    threshold: float = 3.0,
    seed: int = 0,
    max_iters: int = 10_000,
) -> Fit:
    """Fit a transform robustly.

    Args:
        src: (N, 2) source points.
        dst: (N, 2) destination points, same units as ``threshold``.
        model: one of :data:`MODELS`.
        threshold: inlier threshold in destination units (pixels).
        seed: random seed, for repeatable results.
        max_iters: iteration cap of the robust estimator.

    Raises:
        ValueError: unknown model.
        MatchingError: too few matches, or no model found.
    """
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}; choose from {', '.join(MODELS)}")
    src = np.asarray(src, dtype=np.float64).reshape(-1, 2)
    dst = np.asarray(dst, dtype=np.float64).reshape(-1, 2)
    need = max(MIN_POINTS[model] + 1, 4)
    if len(src) < need:
        raise MatchingError(f"only {len(src)} matches; the {model} model needs at least {need}")
    if model in ("affine", "homography"):
        cv2.setRNGSeed(seed)
        s32, d32 = src.astype(np.float32), dst.astype(np.float32)
        if model == "affine":
            m, mask = cv2.estimateAffine2D(
                s32, d32, method=cv2.USAC_MAGSAC, ransacReprojThreshold=threshold, maxIters=max_iters, confidence=0.9999
            )
        else:
            m, mask = cv2.findHomography(s32, d32, cv2.USAC_MAGSAC, threshold, maxIters=max_iters, confidence=0.9999)
        if m is None:
            raise MatchingError(f"no {model} model fits the {len(src)} matches")
        inliers = mask.ravel().astype(bool)
    else:
        rng = np.random.default_rng(seed)
        inliers = _msac(model, src, dst, threshold, rng, min(max_iters, 2000))
    if inliers.sum() < MIN_POINTS[model]:
        raise MatchingError(f"no {model} model fits the {len(src)} matches")
    # Refit on inliers; MAGSAC's soft inliers can include points just past the threshold.
    matrix = least_squares(model, src[inliers], dst[inliers])
    residuals = np.linalg.norm(geometry.apply(matrix, src) - dst, axis=1)
    inliers = residuals < threshold
    if inliers.sum() >= MIN_POINTS[model]:
        matrix = least_squares(model, src[inliers], dst[inliers])
        residuals = np.linalg.norm(geometry.apply(matrix, src) - dst, axis=1)
    return Fit(model, matrix, inliers, residuals)
