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
  what extrapolation beyond the measured part costs;
- the disagreement of the two images' content: the median distance between
  where each window (all of them, not only the inliers) measures the target
  content and where the fit puts it. Two scenes of different dates do not place
  every edge at the same spot (snow edges, shadows, growth); where they disagree
  locally by a pixel, content alone cannot pin the whole image closer than that,
  and no resampling of one pair can see an offset the whole scene shares;
- for a shift, the corners' distance to the similarity fitted to the same
  measurements: the rotation and scale that the choice of a shift left out.

They add in quadrature.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from georef import geometry
from georef.transforms import MATRIX_MODELS, MODELS

#: Percentile of the estimate: CE90.
PERCENTILE = 90.0


@dataclass(frozen=True)
class Accuracy:
    """Estimated error of an alignment at the target's four corners.

    Attributes:
        ce90_px: the estimate, target pixels: the two terms below in quadrature.
        ce90_m: the same in metres.
        fit_ce90_px: 90th percentile of the mean corner displacement over block resamples of the fit.
        disagreement_px: median distance of every measurement from where the fit puts it.
        model_px: for a shift, the corners' mean distance to a similarity of the same measurements; else 0.
        measurements: measurements used (windows or tie points).
        blocks: spatial blocks holding the inliers.
        source: ``"refinement windows"`` or ``"tie points"``.
    """

    ce90_px: float
    ce90_m: float
    fit_ce90_px: float
    disagreement_px: float
    model_px: float
    measurements: int
    blocks: int
    source: str

    def to_dict(self) -> dict:
        return asdict(self)


def block_bootstrap(src: np.ndarray, dst: np.ndarray, model: str, width: float, height: float,
                    blocks: int = 4, replicates: int = 200, seed: int = 0) -> np.ndarray:
    """Mean corner displacement of refits on block resamples of the measurements.

    Args:
        src: (N, 2) measurement positions in the target, pixels of a ``width`` x ``height`` image.
        dst: (N, 2) where each was measured, in units whose displacement is reported.
        model: the model of the fit (a warp model is resampled as a third-order polynomial).
        blocks: the image is cut into ``blocks`` x ``blocks`` cells.
        replicates: resamples.

    Returns:
        (R,) mean distance of the four corners between each refit and the fit to all measurements, in ``dst``
        units; empty where too few blocks hold measurements.
    """
    spec = MODELS[model if model in MATRIX_MODELS else "poly3"]
    cell = (np.clip((src[:, 0] / width * blocks).astype(int), 0, blocks - 1) * blocks
            + np.clip((src[:, 1] / height * blocks).astype(int), 0, blocks - 1))
    members = [np.flatnonzero(cell == c) for c in np.unique(cell)]
    if len(members) < 3 or len(src) <= spec.min_points:
        return np.zeros(0)
    corners = geometry.corners(width, height)
    reference = spec.fit(src, dst).apply(corners)
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(replicates):
        picked = np.concatenate([members[i] for i in rng.integers(0, len(members), len(members))])
        if len(np.unique(src[picked], axis=0)) <= spec.min_points:
            continue
        try:
            moved = spec.fit(src[picked], dst[picked]).apply(corners)
        except (np.linalg.LinAlgError, ValueError):
            continue
        out.append(float(np.linalg.norm(moved - reference, axis=1).mean()))
    return np.asarray(out)


def estimate(src: np.ndarray, dst: np.ndarray, inliers: np.ndarray, model: str, size: tuple[int, int],
             metres_per_px: float, source: str, blocks: int = 4) -> Accuracy | None:
    """The estimated CE90 at the corners; None where the inliers are too few to resample.

    Args:
        src: (N, 2) measurement positions, target pixels.
        dst: (N, 2) the measured positions, target pixels (so distances are target pixels).
        inliers: (N,) bool, the measurements the final fit kept.
        model: the fitted model.
        size: target (width, height), pixels.
        metres_per_px: ground size of a target pixel.
        source: what the measurements are, for the report.
    """
    width, height = size
    displacement = block_bootstrap(src[inliers], dst[inliers], model, width, height, blocks)
    if len(displacement) < 20:
        return None
    fit_ce90 = float(np.percentile(displacement, PERCENTILE))
    spec = MODELS[model if model in MATRIX_MODELS else "poly3"]
    fitted = spec.fit(src[inliers], dst[inliers])
    disagreement = float(np.median(np.linalg.norm(fitted.apply(src) - dst, axis=1)))
    model_term = 0.0
    if model == "shift":
        corners = geometry.corners(width, height)
        richer = MODELS["similarity"].fit(src[inliers], dst[inliers])
        model_term = float(np.linalg.norm(richer.apply(corners) - fitted.apply(corners), axis=1).mean())
    ce90 = float(np.sqrt(fit_ce90**2 + disagreement**2 + model_term**2))
    cells = len(np.unique(np.clip((src[inliers] / [width, height] * blocks).astype(int), 0, blocks - 1), axis=0))
    return Accuracy(ce90, ce90 * metres_per_px, fit_ce90, disagreement, model_term, len(src), cells, source)
