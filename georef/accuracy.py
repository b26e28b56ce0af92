"""An estimate of a transform's error at the target's corners, from independent measurements.

Keypoint residuals say how well the matches fit the transform, not how well the
transform is known: they are quantised at whole pixels and spread about zero
whatever the error. The estimate here combines two terms, from the measurements
the final fit rests on (the refinement's correlation windows, or the tie points
where no refinement ran):

- the statistical uncertainty of the fit: the measurements are resampled in
  spatial blocks, each resample refitted, and the 90th percentile of the
  corners' displacement taken. Blocks, not single windows, are resampled because
  neighbouring windows share their errors (a shadow, a snow edge); a resample
  that leaves out a region shows how far the corners depend on it, which is also
  what extrapolation beyond the measured part costs. Where few blocks are
  occupied (a partial overlap, a corner of the target) the resamples are too few
  and too alike to show that cost, so the least-squares covariance of the fit
  (the robust scatter of every measurement about it, neighbouring windows
  counted as the share of an independent one that they are) is carried to the
  corners as well, and the larger of the two taken;
- the disagreement of the two images' content: the median distance between
  where each window (all of them, not only the inliers; on a large scene every
  window of the full-resolution windows' refinements, not only those the pooled
  fit rests on) measures the target content and where the fit puts it. Two
  scenes of different dates do not place every edge at the same spot (snow
  edges, shadows, growth); where they disagree locally by a pixel, content alone
  cannot pin the whole image closer than that, and no resampling of one pair can
  see an offset the whole scene shares.
  Where the inputs' pixels differ, the windows measure at the coarser one, and
  their distances grow with it (each window's noise is a share of the pixel it
  measures in), while an offset of the ground's content does not: the distance
  is counted in pixels of the finer input (a third of it for a 30 m input
  against a 10 m one). For the same reason it is measured in windows of their
  ground size (64 pixels of the finer input) where the refinement made its
  windows smaller to fit a small image: the 32 px windows of the benchmark's
  256 px crops lie 0.69 px from the fit (median), their 64 px windows 0.46 px,
  as the whole 512 px subtiles' do; the content's offset does not change with
  the window, each window's noise does;
- for a shift, the corners' distance to the similarity fitted to the same
  measurements: the rotation and scale that the choice of a shift left out.
  The first term of a shift is that of the similarity as well: a shift is
  chosen where the measurements cannot tell a rotation or scale from their
  noise, and that noise reaches the corners through them (a 128 px crop under
  clouds, turned 1.5 degrees and scaled by 2 %, was accepted 3.4 px off with
  the shift's own spread in an estimate of 1.7 px; the similarity's makes it
  2.7 px).

They add in quadrature.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from georef import geometry
from georef.transforms import MATRIX_MODELS, MODELS, polynomial_terms

#: Percentile of the estimate: CE90.
PERCENTILE = 90.0


@dataclass(frozen=True)
class Accuracy:
    """Estimated error of an alignment at the target's four corners.

    Attributes:
        ce90_px: the estimate, target pixels: the three terms below in quadrature.
        ce90_m: the same in metres.
        fit_ce90_px: the larger of ``bootstrap_ce90_px`` and ``covariance_ce90_px``.
        bootstrap_ce90_px: 90th percentile of the mean corner displacement over block resamples of the fit
            (of a similarity, for a shift).
        covariance_ce90_px: the same percentile where the fit's parameters vary as its least-squares
            covariance says (of a similarity, for a shift).
        disagreement_px: median distance of every measurement (or window of the ground size, where given)
            from where the fit puts it, counted in pixels of the finer input.
        model_px: for a shift, the corners' mean distance to a similarity of the same measurements; else 0.
        measurements: measurements used (windows or tie points).
        blocks: spatial blocks holding the inliers.
        source: ``"refinement windows"``, ``"tie points"`` or ``"GCPs"`` (a fit to a user's GCPs).
    """

    ce90_px: float
    ce90_m: float
    fit_ce90_px: float
    bootstrap_ce90_px: float
    covariance_ce90_px: float
    disagreement_px: float
    model_px: float
    measurements: int
    blocks: int
    source: str

    def to_dict(self) -> dict:
        return asdict(self)


def _design(model: str, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the linear least-squares problem of a model: (2N, P) design, and (2N,) what the source alone adds.

    Row 2i is point i's x, row 2i + 1 its y. A homography is resampled as an affine, a polynomial or
    spline as a third-order polynomial: their linear parts carry the resampling's spread.
    """
    x, y = points[:, 0], points[:, 1]
    one, zero = np.ones_like(x), np.zeros_like(x)
    if model == "shift":
        rows = np.stack([np.stack([one, zero], 1), np.stack([zero, one], 1)], 1)
        return rows.reshape(-1, 2), points.reshape(-1)
    if model == "similarity":
        rows = np.stack([np.stack([x, -y, one, zero], 1), np.stack([y, x, zero, one], 1)], 1)
        return rows.reshape(-1, 4), np.zeros(2 * len(x))
    terms = polynomial_terms(points, 1 if model in ("affine", "homography") else 3)
    blank = np.zeros_like(terms)
    rows = np.stack([np.concatenate([terms, blank], 1), np.concatenate([blank, terms], 1)], 1)
    return rows.reshape(-1, 2 * terms.shape[1]), np.zeros(2 * len(x))


def _normalised(src: np.ndarray, dst: np.ndarray, model: str, width: float,
                height: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]:
    """The least-squares problem of :func:`_design` in coordinates centred on the image and scaled by half
    its longer side (they keep the normal equations well conditioned): the (2N, P) design, the (2N,)
    target, the corners' (8, P) design and (8,) part the source alone adds, and the scale."""
    centre, scale = np.array([width, height]) / 2, max(width, height) / 2
    design, base = _design(model, (src - centre) / scale)
    corners_design, corners_base = _design(model, (geometry.corners(width, height) - centre) / scale)
    return design, ((dst - centre) / scale).reshape(-1) - base, corners_design, corners_base, scale


def _cells(points: np.ndarray, width: float, height: float, blocks: int) -> np.ndarray:
    """(N,) index of the ``blocks`` x ``blocks`` cell of a ``width`` x ``height`` image holding each point."""
    return (np.clip((points[:, 0] / width * blocks).astype(int), 0, blocks - 1) * blocks
            + np.clip((points[:, 1] / height * blocks).astype(int), 0, blocks - 1))


def block_bootstrap(src: np.ndarray, dst: np.ndarray, model: str, width: float, height: float,
                    blocks: int = 4, replicates: int = 200, seed: int = 0) -> np.ndarray:
    """Mean corner displacement of refits on block resamples of the measurements.

    A resample draws the occupied blocks with replacement; each measurement counts as often as its
    block was drawn, and every resample's weighted least-squares fit is solved at once.

    Args:
        src: (N, 2) measurement positions in the target, pixels of a ``width`` x ``height`` image.
        dst: (N, 2) where each was measured, in units whose displacement is reported.
        model: the model of the fit.
        blocks: the image is cut into ``blocks`` x ``blocks`` cells.
        replicates: resamples.

    Returns:
        (R,) mean distance of the four corners between each refit and the fit to all measurements, in ``dst``
        units; empty where too few blocks hold measurements.
    """
    occupied, index = np.unique(_cells(src, width, height, blocks), return_inverse=True)
    need = MODELS[model].min_points if model in MATRIX_MODELS else MODELS["poly3"].min_points
    if len(occupied) < 3 or len(src) <= need:
        return np.zeros(0)
    design, target, corners_design, corners_base, scale = _normalised(src, dst, model, width, height)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(occupied), (replicates + 1, len(occupied)))
    draws[0] = np.arange(len(occupied))  # the first "resample" is all measurements once: the reference fit
    counts = np.stack([np.bincount(d, minlength=len(occupied)) for d in draws])[:, index]  # (R + 1, N)
    weights = np.repeat(counts, 2, axis=1).astype(np.float64)
    normal = np.einsum("np,rn,nq->rpq", design, weights, design)
    rhs = np.einsum("np,rn,n->rp", design, weights, target)
    solvable = np.linalg.matrix_rank(normal) == design.shape[1]
    if not solvable[0]:  # no reference fit to compare with
        return np.zeros(0)
    params = np.linalg.solve(normal[solvable], rhs[solvable][..., None])[..., 0]
    moved = (params @ corners_design.T + corners_base).reshape(len(params), 4, 2) * scale
    return np.linalg.norm(moved[1:] - moved[0], axis=2).mean(axis=1)


def covariance_spread(src: np.ndarray, dst: np.ndarray, inliers: np.ndarray, model: str, width: float,
                      height: float, shared: float = 1.0, draws: int = 2000, seed: int = 0) -> float:
    """90th percentile of the mean corner displacement of the least-squares fit to the inliers, its
    parameters varying as their covariance says.

    The noise is the robust scale (1.4826 times the median absolute residual) of every measurement
    about that fit, not the inliers' scatter alone: an inlier threshold cuts the scatter off at its
    value, and a fit that most measurements disagree with is the less certain for it.

    Args:
        src, dst, model, width, height: as for :func:`block_bootstrap`.
        inliers: (N,) bool, the measurements the fit rests on.
        shared: measurements per independent one: the noise's variance counts this many times over.
        draws: parameter draws.

    Returns:
        The percentile, in ``dst`` units; 0 where the inliers leave no residual degree of freedom.
    """
    design, target, corners_design, _, scale = _normalised(src, dst, model, width, height)
    used = np.repeat(inliers, 2)
    normal = design[used].T @ design[used]
    if used.sum() <= design.shape[1] or np.linalg.matrix_rank(normal) < design.shape[1]:
        return 0.0
    params = np.linalg.solve(normal, design[used].T @ target[used])
    sigma = 1.4826 * np.median(np.abs(target - design @ params))
    # The draws are fixed standard normals carried through the inverse Cholesky factor of the normal
    # matrix (covariance = sigma^2 shared L^-T L^-1), so that the percentile moves continuously with the
    # measurements: a decomposition such as the SVD can turn rounding-level changes of its input into
    # different samples.
    lower = np.linalg.cholesky(normal)
    normals = np.random.default_rng(seed).standard_normal((len(params), draws))
    samples = sigma * np.sqrt(shared) * np.linalg.solve(lower.T, normals).T  # (draws, P)
    moved = (samples @ corners_design.T).reshape(draws, 4, 2) * scale
    return float(np.percentile(np.linalg.norm(moved, axis=2).mean(axis=1), PERCENTILE))


def estimate(src: np.ndarray, dst: np.ndarray, inliers: np.ndarray, model: str, size: tuple[int, int],
             metres_per_px: float, source: str, blocks: int = 4, shared: float = 1.0,
             finer_share: float = 1.0, content: tuple[np.ndarray, np.ndarray] | None = None) -> Accuracy | None:
    """The estimated CE90 at the corners; None where the inliers are too few to resample.

    Args:
        src: (N, 2) measurement positions, target pixels.
        dst: (N, 2) the measured positions, target pixels (so distances are target pixels).
        inliers: (N,) bool, the measurements the final fit kept.
        model: the fitted model.
        size: target (width, height), pixels.
        metres_per_px: ground size of a target pixel.
        source: what the measurements are, for the report.
        shared: measurements per independent one (see :func:`covariance_spread`).
        finer_share: the finer input's pixel over the coarser input's (1 for inputs of one pixel size):
            the disagreement, measured at the coarser, is counted in pixels of the finer.
        content: (K, 2) positions and (K, 2) measured positions, target pixels, of the windows the
            disagreement is measured on where the measurements are not all of them (windows made smaller to
            fit a small image, or the inliers of several refinements). None: on the measurements.
    """
    width, height = size
    # A shift is chosen where the measurements cannot tell a rotation or scale from their noise; the corners
    # then carry whatever rotation and scale that noise hides, which a similarity's spread shows.
    spread_model = "similarity" if model == "shift" else model
    displacement = block_bootstrap(src[inliers], dst[inliers], spread_model, width, height, blocks)
    if len(displacement) < 20:
        return None
    bootstrap_ce90 = float(np.percentile(displacement, PERCENTILE))
    covariance_ce90 = covariance_spread(src, dst, inliers, spread_model, width, height, shared)
    fit_ce90 = max(bootstrap_ce90, covariance_ce90)
    spec = MODELS[model if model in MATRIX_MODELS else "poly3"]
    fitted = spec.fit(src[inliers], dst[inliers])
    probe_src, probe_dst = (src, dst) if content is None else content
    disagreement = finer_share * float(np.median(np.linalg.norm(fitted.apply(probe_src) - probe_dst, axis=1)))
    model_term = 0.0
    if model == "shift":
        corners = geometry.corners(width, height)
        richer = MODELS["similarity"].fit(src[inliers], dst[inliers])
        model_term = float(np.linalg.norm(richer.apply(corners) - fitted.apply(corners), axis=1).mean())
    ce90 = float(np.sqrt(fit_ce90**2 + disagreement**2 + model_term**2))
    cells = len(np.unique(_cells(src[inliers], width, height, blocks)))
    return Accuracy(ce90, ce90 * metres_per_px, fit_ce90, bootstrap_ce90, covariance_ce90, disagreement, model_term,
                    len(src), cells, source)
