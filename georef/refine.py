"""Sub-pixel refinement of a fitted transform by local phase correlation.

Keypoint matchers localise to a pixel or so (XFeat detects on an 8 px cell
grid). Once a transform is known to that precision, the reference can be
resampled onto the target grid and the remaining offset measured densely:
phase correlation of gradient magnitudes in windows over the image (the AROSICS
idea, applied after a learned matcher). Gradient magnitude keeps edges where
snow inverts the brightness of fields. The window offsets become tie points
for a final robust least-squares fit.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import cv2
import numpy as np

from georef import geometry
from georef.fitting import fit_transform

log = logging.getLogger(__name__)


@dataclass
class Refinement:
    """Window tie points of the refinement.

    Attributes:
        matrix: (3, 3) refined target-raster -> chip-raster transform.
        model: its model (the one chosen, where ``auto`` was asked).
        target_px: (M, 2) window centres, target working raster coordinates.
        chip_px: (M, 2) their measured positions in the chip.
        response: (M,) phase-correlation peak strength.
        inliers: (M,) bool, windows the final fit kept.
    """

    matrix: np.ndarray
    model: str
    target_px: np.ndarray
    chip_px: np.ndarray
    response: np.ndarray
    inliers: np.ndarray


def _gradient_magnitude(image: np.ndarray) -> np.ndarray:
    gx = cv2.Sobel(image, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(image, cv2.CV_32F, 0, 1, ksize=3)
    return cv2.magnitude(gx, gy)


def resample_to(chip: np.ndarray, matrix: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Sample ``chip`` at ``matrix`` applied to each pixel of a ``shape`` grid (raster coordinates)."""
    to_index = geometry.translation(-geometry.PIXEL_CENTRE, -geometry.PIXEL_CENTRE)
    m = to_index @ matrix @ np.linalg.inv(to_index)
    h, w = shape
    return cv2.warpPerspective(chip, m, (w, h), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def _window_sums(image: np.ndarray, window: int) -> np.ndarray:
    """(H - window + 1, W - window + 1) sums of ``image`` over the window whose top-left pixel is [y, x]."""
    total = cv2.integral(image, sdepth=cv2.CV_64F)
    return total[window:, window:] - total[:-window, window:] - total[window:, :-window] + total[:-window, :-window]


def _window_variance(image: np.ndarray, window: int) -> np.ndarray:
    """Variance of ``image`` over each window, indexed like :func:`_window_sums`."""
    values = image.astype(np.float64)
    mean = _window_sums(values, window) / window**2
    return _window_sums(values**2, window) / window**2 - mean**2


def window_offsets(
    target: np.ndarray,
    reference: np.ndarray,
    valid: np.ndarray,
    window: int = 64,
    step: int = 32,
    min_response: float = 0.05,
    max_offset: float = 3.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Offsets of ``reference`` against ``target`` in windows on a grid.

    Args:
        target, reference: (H, W) float32 images on the same grid.
        valid: (H, W) bool, pixels both images hold.
        window: window side, pixels.
        step: grid spacing, pixels.
        min_response: weakest phase-correlation peak accepted.
        max_offset: largest offset accepted, pixels.

    Returns:
        (M, 2) window centres (raster coordinates), (M, 2) offsets such that
        target content at c is found in reference at c + offset, (M,) responses.
    """
    gt, gr = _gradient_magnitude(target), _gradient_magnitude(reference)
    hann = cv2.createHanningWindow((window, window), cv2.CV_32F)
    h, w = target.shape
    # Window sums from integral images: the texture and validity checks cost O(1) per window.
    invalid = _window_sums((~valid).astype(np.float64), window)
    variance = [_window_variance(g, window) for g in (gt, gr)]
    centres, offsets, responses = [], [], []
    for y in range(0, h - window + 1, step):
        for x in range(0, w - window + 1, step):
            if invalid[y, x] > 0.5 or min(variance[0][y, x], variance[1][y, x]) < 1e-6:
                continue
            a, b = gt[y:y + window, x:x + window], gr[y:y + window, x:x + window]
            (dx, dy), response = cv2.phaseCorrelate(a, b, hann)
            if response < min_response or np.hypot(dx, dy) > max_offset:
                continue
            centres.append((x + window / 2, y + window / 2))
            offsets.append((dx, dy))
            responses.append(response)
    return (np.array(centres, dtype=np.float64).reshape(-1, 2), np.array(offsets, dtype=np.float64).reshape(-1, 2),
            np.array(responses, dtype=np.float64))


def refine(
    target: np.ndarray,
    target_valid: np.ndarray,
    chip: np.ndarray,
    chip_valid: np.ndarray,
    matrix: np.ndarray,
    model: str,
    iterations: int = 5,
    window: int = 64,
    threshold: float = 1.0,
    min_windows: int = 12,
    converged_px: float = 0.02,
) -> Refinement | None:
    """Refine a target-raster -> chip-raster transform to sub-pixel precision.

    Args:
        target: (H, W) float32 target image.
        target_valid: (H, W) bool.
        chip: (h, w) float32 reference chip.
        chip_valid: (h, w) bool.
        matrix: (3, 3) transform to refine, accurate to a few pixels.
        model: transform model of the window fits (``auto`` chooses in each round).
        iterations: most resample-and-measure rounds; each shrinks the offsets that
            the biased single measurement underestimates.
        window: correlation window side, pixels.
        threshold: inlier threshold of the window fit, pixels.
        min_windows: fewest usable windows; below it the transform is returned unrefined (None).
        converged_px: stop once a round moves the image corners less than this.

    Returns:
        The refinement, or None where too few windows hold texture.
    """
    result = None
    for _ in range(iterations):
        warped = resample_to(chip, matrix, target.shape)
        warped_valid = resample_to(chip_valid.astype(np.float32), matrix, target.shape) > 0.99
        centres, offsets, responses = window_offsets(target, warped, target_valid & warped_valid, window)
        if len(centres) < min_windows:
            log.info("refinement skipped: %d textured windows < %d", len(centres), min_windows)
            return result
        chip_px = geometry.apply(matrix, centres + offsets)
        fit = fit_transform(centres, chip_px, model, threshold)
        change = geometry.mean_corner_distance(fit.matrix, matrix, *target.shape[::-1])
        matrix = fit.matrix
        result = Refinement(matrix, fit.model, centres, chip_px, responses, fit.inliers)
        log.info("refinement: %d windows, %d inliers, moved %.3f px", len(centres), fit.inliers.sum(), change)
        if change < converged_px:
            break
    return result
