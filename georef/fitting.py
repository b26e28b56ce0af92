"""Robust fitting of a 2-D transform to putative matches.

Affine and homography use OpenCV's MAGSAC++ (USAC). OpenCV's USAC has no
shift or similarity solver, so those use a small MSAC of our own with the same
inlier threshold. Every model ends with a least-squares refit on its inliers.

``auto`` fits an affine robustly, then keeps a similarity unless the affine's
two extra terms are both large against the tie points' scatter and better at
predicting unseen parts of the image. Matches between seasons carry local,
spatially correlated offsets (shadows, snow edges); an affine bends to them and
extrapolates them to the image corners, which a similarity cannot.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import cv2
import numpy as np

from georef import geometry
from georef.errors import MatchingError
from georef.transforms import AUTO, MATRIX_MODELS, MODELS, WARP_MODELS, Transform, least_squares

log = logging.getLogger(__name__)

MIN_POINTS = {name: MODELS[name].min_points for name in MATRIX_MODELS}


@dataclass
class Fit:
    """A fitted transform.

    Attributes:
        model: one of :data:`georef.transforms.MATRIX_MODELS`.
        matrix: (3, 3) transform mapping source points onto destination points.
        inliers: (N,) bool inlier flags of the input matches.
        residuals: (N,) float64 distance between mapped source and destination points.
    """

    model: str
    matrix: np.ndarray
    inliers: np.ndarray
    residuals: np.ndarray

    def with_matrix(
        self, matrix: np.ndarray, src: np.ndarray, dst: np.ndarray, threshold: float, model: str | None = None
    ) -> "Fit":
        """The same matches judged against another transform (e.g. a refined one, of ``model``)."""
        residuals = np.linalg.norm(geometry.apply(matrix, src) - dst, axis=1)
        return Fit(model or self.model, matrix, residuals < threshold, residuals)


def _hypotheses(model: str, src: np.ndarray, dst: np.ndarray, rng: np.random.Generator, iters: int) -> np.ndarray:
    """(iters, 3, 3) shift or similarity transforms from random minimal samples, solved in closed form."""
    n = len(src)
    if model == "shift":
        idx = rng.integers(0, n, iters)
        h = np.tile(np.eye(3), (iters, 1, 1))
        h[:, :2, 2] = dst[idx] - src[idx]
        return h
    # Similarity as complex numbers: q = a * p + b through two sampled points.
    i = rng.integers(0, n, iters)
    j = (i + rng.integers(1, n, iters)) % n  # a second, different point
    p = src[:, 0] + 1j * src[:, 1]
    q = dst[:, 0] + 1j * dst[:, 1]
    dp = p[j] - p[i]
    keep = np.abs(dp) > 1e-9
    a = (q[j] - q[i])[keep] / dp[keep]
    b = q[i][keep] - a * p[i][keep]
    h = np.tile(np.eye(3), (len(a), 1, 1))
    h[:, 0, 0], h[:, 0, 1], h[:, 1, 0], h[:, 1, 1] = a.real, -a.imag, a.imag, a.real
    h[:, 0, 2], h[:, 1, 2] = b.real, b.imag
    return h


def _msac(
    model: str, src: np.ndarray, dst: np.ndarray, threshold: float, rng: np.random.Generator, iters: int,
    confidence: float = 0.9999,
) -> np.ndarray:
    """MSAC over minimal samples: returns the inlier mask of the best hypothesis."""
    best_cost, best_mask = np.inf, np.zeros(len(src), dtype=bool)
    needed, done, chunk = iters, 0, 100  # bounded memory: 100 hypotheses x N residuals at a time
    while done < min(needed, iters):
        h = _hypotheses(model, src, dst, rng, chunk)
        done += chunk
        mapped = np.einsum("kij,nj->kni", h[:, :2, :2], src) + h[:, None, :2, 2]
        r2 = ((mapped - dst) ** 2).sum(axis=2)
        cost = np.minimum(r2, threshold**2).sum(axis=1)
        k = int(np.argmin(cost)) if len(cost) else -1
        if k >= 0 and cost[k] < best_cost:
            best_cost, best_mask = cost[k], r2[k] < threshold**2
            # Standard stopping rule: enough samples to draw an all-inlier one with the confidence.
            w = min(best_mask.mean(), 1 - 1e-9) ** MIN_POINTS[model]
            needed = int(np.ceil(np.log(1 - confidence) / np.log1p(-w))) if w > 0 else iters
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
        model: one of :data:`georef.transforms.MATRIX_MODELS`, or ``auto`` (see :func:`select_model`); the
            returned fit names the model chosen.
        threshold: inlier threshold in destination units (pixels).
        seed: random seed, for repeatable results.
        max_iters: iteration cap of the robust estimator.

    Raises:
        ValueError: unknown model.
        MatchingError: too few matches, or no model found.
    """
    src = np.asarray(src, dtype=np.float64).reshape(-1, 2)
    dst = np.asarray(dst, dtype=np.float64).reshape(-1, 2)
    if model == AUTO:
        fit = fit_transform(src, dst, "affine", threshold, seed, max_iters)
        chosen = select_model(src[fit.inliers], dst[fit.inliers])
        return fit if chosen == "affine" else Fit(chosen, *_refit(chosen, src, dst, fit.inliers, threshold))
    if model not in MATRIX_MODELS:
        raise ValueError(f"unknown model {model!r}; choose from {', '.join((*MATRIX_MODELS, AUTO))}")
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
    return Fit(model, *_refit(model, src, dst, inliers, threshold))


def _refit(model: str, src: np.ndarray, dst: np.ndarray, inliers: np.ndarray, threshold: float):
    """Least-squares refit on the inliers, then once more on those within the threshold of it.

    MAGSAC's soft inliers can include points just past the threshold.
    """
    matrix = least_squares(model, src[inliers], dst[inliers])
    residuals = np.linalg.norm(geometry.apply(matrix, src) - dst, axis=1)
    inliers = residuals < threshold
    if inliers.sum() >= MIN_POINTS[model]:
        matrix = least_squares(model, src[inliers], dst[inliers])
        residuals = np.linalg.norm(geometry.apply(matrix, src) - dst, axis=1)
    return matrix, inliers, residuals


def block_cells(src: np.ndarray, blocks: int = 3) -> np.ndarray:
    """(N,) the ``blocks`` x ``blocks`` cell of each point, cut at the quantiles of the points' coordinates."""
    edges = [np.quantile(src[:, axis], np.linspace(0, 1, blocks + 1)[1:-1]) for axis in (0, 1)]
    return np.searchsorted(edges[0], src[:, 0]) * blocks + np.searchsorted(edges[1], src[:, 1])


def blocked_errors(model: str, src: np.ndarray, dst: np.ndarray, blocks: int = 3,
                   cell: np.ndarray | None = None) -> np.ndarray:
    """Distance of each point to the model fitted without its spatial block.

    The points are split into ``blocks`` x ``blocks`` cells at the quantiles of
    their source coordinates; each cell is predicted from all the others, so a
    model is judged on how it extrapolates, not on how closely it follows
    neighbouring points.

    Args:
        model: ``shift``, ``similarity`` or ``affine``; the nine fits are made together from sums
            over the points (as :func:`least_squares` would fit each, to rounding).
        src, dst: (N, 2) inlier tie points.
        cell: the points' cells (:func:`block_cells`), where calls on the same points share them.

    Returns:
        (N,) held-out distances; NaN in a cell whose complement is too small to fit.
    """
    if cell is None:
        cell = block_cells(src, blocks)
    errors = np.full(len(src), np.nan)
    cells = [k for k in np.unique(cell) if (cell != k).sum() > MIN_POINTS[model] + 1]
    if not cells:
        return errors
    cells = np.array(cells)
    held = np.isin(cell, cells)
    errors[held] = _complement_errors(model, src, dst, cell, cells)[held]
    return errors


def _complement_errors(model: str, src: np.ndarray, dst: np.ndarray, cell: np.ndarray,
                       cells: np.ndarray) -> np.ndarray:
    """(N,) distance of each point to the ``model`` fitted to the points outside its cell, all cells' fits
    made together (:data:`_COMPLEMENT_FITS`); a point outside ``cells`` (sorted) gets an arbitrary value."""
    matrices = _COMPLEMENT_FITS[model](src, dst, cell, cells)
    own = matrices[np.clip(np.searchsorted(cells, cell), 0, len(cells) - 1)]
    predicted = np.einsum("nij,nj->ni", own[:, :2, :2], src) + own[:, :2, 2]
    return np.linalg.norm(predicted - dst, axis=1)


def _complement_sums(values: np.ndarray, cell: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """(K, ...) sums of ``values`` (N, ...) over the points outside each of ``cells``."""
    inside = (cell[None, :] == cells[:, None]).astype(np.float64)
    flat = values.reshape(len(values), -1)
    return (flat.sum(axis=0) - inside @ flat).reshape(len(cells), *values.shape[1:])


def _complement_fits_shift(src, dst, cell, cells) -> np.ndarray:
    """(K, 3, 3) least-squares shifts of the points outside each cell, all at once."""
    n = _complement_sums(np.ones(len(src)), cell, cells)
    shifts = _complement_sums(dst - src, cell, cells) / n[:, None]
    out = np.tile(np.eye(3), (len(cells), 1, 1))
    out[:, :2, 2] = shifts
    return out


def _complement_fits_similarity(src, dst, cell, cells) -> np.ndarray:
    """(K, 3, 3) least-squares similarities (as :func:`least_squares`) of the points outside each cell."""
    origin = src.mean(axis=0)  # sums about a common origin keep the moments well conditioned
    s, d = src - origin, dst - origin
    n = _complement_sums(np.ones(len(s)), cell, cells)
    ms, md = _complement_sums(s, cell, cells) / n[:, None], _complement_sums(d, cell, cells) / n[:, None]
    moments = _complement_sums(np.column_stack([(s * d).sum(axis=1), s[:, 0] * d[:, 1] - s[:, 1] * d[:, 0],
                                                (s**2).sum(axis=1)]), cell, cells)
    a = moments[:, 0] - n * (ms * md).sum(axis=1)
    b = moments[:, 1] - n * (ms[:, 0] * md[:, 1] - ms[:, 1] * md[:, 0])
    denom = np.maximum(moments[:, 2] - n * (ms**2).sum(axis=1), 1e-12)
    ca, sa = a / denom, b / denom
    out = np.tile(np.eye(3), (len(cells), 1, 1))
    out[:, 0, 0], out[:, 0, 1], out[:, 1, 0], out[:, 1, 1] = ca, -sa, sa, ca
    rotated = np.einsum("kij,kj->ki", out[:, :2, :2], ms + origin)
    out[:, :2, 2] = md + origin - rotated
    return out


def _complement_fits_affine(src, dst, cell, cells) -> np.ndarray:
    """(K, 3, 3) least-squares affines of the points outside each cell, by their normal equations."""
    origin = src.mean(axis=0)
    design = np.column_stack([src - origin, np.ones(len(src))])
    gram = _complement_sums(design[:, :, None] * design[:, None, :], cell, cells)
    moment = _complement_sums(design[:, :, None] * (dst - origin)[:, None, :], cell, cells)
    try:
        coef = np.linalg.solve(gram, moment)  # (K, 3, 2): x' - ox, y' - oy from x - ox, y - oy, 1
    except np.linalg.LinAlgError:  # collinear points outside some cell: least squares, one cell at a time
        return np.array([least_squares("affine", src[cell != k], dst[cell != k]) for k in cells])
    out = np.tile(np.eye(3), (len(cells), 1, 1))
    out[:, :2, :2] = np.transpose(coef[:, :2], (0, 2, 1))
    out[:, :2, 2] = coef[:, 2] + origin - np.einsum("kij,j->ki", out[:, :2, :2], origin)
    return out


#: Models whose held-out blocks are fitted together from sums over the points (as fast as one fit).
_COMPLEMENT_FITS = {"shift": _complement_fits_shift, "similarity": _complement_fits_similarity,
                    "affine": _complement_fits_affine}


def _held_out_rmse(model: str, src: np.ndarray, dst: np.ndarray, cell: np.ndarray | None) -> float:
    """RMSE of each point's distance to the model fitted without it: by the spatial blocks ``cell``
    (:func:`block_cells`), or by 5-fold cross-validation where the points are too few to fill blocks (None)."""
    errors = held_out_errors(model, src, dst) if cell is None else blocked_errors(model, src, dst, cell=cell)
    return float(np.sqrt(np.nanmean(errors**2)))


def select_model(
    src: np.ndarray, dst: np.ndarray, significance: float = 5.0, tolerance: float = 0.05, blocks: int = 3
) -> str:
    """``shift``, ``similarity`` or ``affine`` for inlier tie points: the simplest that the data allow.

    A similarity replaces the shift where it predicts held-out parts of the image
    (3 x 3 spatial blocks; 5-fold cross-validation where the points are too few
    for blocks) better by more than ``tolerance``: a rotation or scale change the
    tie points do not demand only adds their noise at the corners. An affine
    replaces the similarity where its two extra terms (a) move the corners of the
    tie points' extent by more than ``significance`` times the tie points' scatter
    about the affine, and (b) predict held-out spatial blocks better by more than
    ``tolerance``. Real cross-season pairs of one orbit-corrected Sentinel-2 tile,
    whose true relation is a similarity, reach a ratio (a) of 4.2 at most in the
    s2-seasons data (0.2 to 2.5 px over 512 px); a real shear or anisotropic scale
    grows with the image and leaves little scatter. Too few points for blocks
    leave the affine out.

    Args:
        src, dst: (N, 2) inlier tie points.
        significance: corner movement, in units of the scatter, that (a) requires.
        tolerance: relative held-out RMSE gain that a richer model must bring.

    Returns:
        The model name.
    """
    if len(src) < 2 * MIN_POINTS["affine"] + 4:
        return "similarity"  # too few to compare: a similarity is the usual truth of a north-up scene
    cell = block_cells(src, blocks) if len(src) >= 4 * blocks * blocks else None
    held_out = {name: _held_out_rmse(name, src, dst, cell) for name in ("shift", "similarity")}
    chosen = "similarity" if held_out["similarity"] < (1 - tolerance) * held_out["shift"] else "shift"
    if cell is not None:
        similarity, affine = least_squares("similarity", src, dst), least_squares("affine", src, dst)
        scatter = float(np.sqrt(np.mean(np.sum((geometry.apply(affine, src) - dst) ** 2, axis=1))))
        lo = src.min(axis=0)
        extent = geometry.corners(*(src.max(axis=0) - lo)) + lo
        departure = float(np.linalg.norm(geometry.apply(similarity, extent) - geometry.apply(affine, extent),
                                         axis=1).max())
        held_out["affine"] = _held_out_rmse("affine", src, dst, cell)
        if departure > significance * max(scatter, 1e-6) and held_out["affine"] < (1 - tolerance) * min(
                held_out["shift"], held_out["similarity"]):
            chosen = "affine"
    log.debug("model selection: held-out RMSE %s -> %s",
              ", ".join(f"{k} {v:.3f}" for k, v in held_out.items()), chosen)
    return chosen


def fit_warp_robust(
    name: str, src: np.ndarray, dst: np.ndarray, start: np.ndarray, threshold: float, iterations: int = 5
) -> tuple[Transform, np.ndarray]:
    """Fit a warp model to matches, growing the inlier set from a robust 3x3 start.

    Inliers are chosen with a polynomial (order 3 for ``tps``): an interpolating
    spline has no residual at its own points and cannot reject outliers.

    Args:
        name: a :data:`georef.transforms.WARP_MODELS` name.
        src, dst: (N, 2) matches, in units where ``threshold`` applies.
        start: (3, 3) robust fit giving the first inliers.
        threshold: inlier distance.

    Returns:
        The model fitted to the final inliers, and the (N,) inlier flags.
    """
    selector = MODELS["poly3" if name == "tps" else name]
    inliers = np.linalg.norm(geometry.apply(start, src) - dst, axis=1) < threshold
    for _ in range(iterations):
        model = selector.fit(src[inliers], dst[inliers])
        grown = np.linalg.norm(model.apply(src) - dst, axis=1) < threshold
        if (grown == inliers).all():
            break
        inliers = grown
    return MODELS[name].fit(src[inliers], dst[inliers]), inliers


def held_out_errors(name: str, src: np.ndarray, dst: np.ndarray, folds: int = 5, seed: int = 0) -> np.ndarray:
    """Distance of each point to the model fitted without its fold (k-fold cross-validation)."""
    n = len(src)
    fold = np.random.default_rng(seed).permutation(n) % folds
    if name in _COMPLEMENT_FITS and n >= folds:
        return _complement_errors(name, src, dst, fold, np.arange(folds))
    errors = np.full(n, np.nan)
    model = MODELS[name]
    for k in range(folds):
        train, test = fold != k, fold == k
        predicted = model.fit(src[train], dst[train]).apply(src[test])
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
        need = MODELS[name].min_points if name in WARP_MODELS else 4
        if len(src) < 2 * need:
            continue
        e = held_out_errors(name, src, dst) / unit_per_px
        out[name] = {"rmse_px": float(np.sqrt(np.mean(e**2))), "ce90_px": float(np.percentile(e, 90)),
                     "max_px": float(e.max())}
    return out
