"""The correlation-first path: where the target claims a position close to its true one, one correlation
finds the offset, and the feature matcher is not needed.

The reference chip is resampled onto the target's grid, extended by the search
margin, through the claimed georeference; the target's gradient magnitudes are
located in it by normalised cross-correlation, first decimated, then at full
resolution around the coarse peak, to a fraction of a pixel. A peak that is weak,
or that a second peak nearly equals (repeated fields, regular streets), is no
answer: the pipeline then falls back to the matcher. The offset found seeds the
refinement, whose windows must confirm it (see :func:`georef.refine.window_log_nfa`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import cv2
import numpy as np

from georef import geometry
from georef.raster import MatchImage
from georef.refine import gradient_magnitude, parabola_vertex, resample_to

log = logging.getLogger(__name__)

#: Decimation of the coarse correlation.
COARSE_FACTOR = 4
#: Weakest normalised correlation peak accepted.
MIN_PEAK = 0.2
#: Largest ratio of the second peak to the first: above it, the answer is ambiguous.
MAX_SECOND_PEAK = 0.8
#: Largest grid (the target's grown by the margin) correlated; the matcher searches anything wider.
MAX_GRID_PIXELS = 16_000_000


@dataclass(frozen=True)
class Offset:
    """Where the target's content sits in the chip, against where its claim puts it.

    Attributes:
        shift: (2,) x, y offset in working pixels of the target's grid.
        peak: normalised correlation at the offset (1: identical gradients).
        second: the highest correlation outside the peak's neighbourhood, relative to the peak.
        spread: largest distance of a quadrant's own offset from ``shift``, working pixels.
    """

    shift: np.ndarray
    peak: float
    second: float
    spread: float = float("inf")

    def convincing(self, max_spread: float) -> bool:
        """A clear, unambiguous peak, whose quadrants agree with it to ``max_spread`` working pixels: where they
        disagree more, the target is turned or scaled against its claim beyond what the refinement captures."""
        return self.peak >= MIN_PEAK and self.second <= MAX_SECOND_PEAK and self.spread <= max_spread


def _vertex(before: float, centre: float, after: float) -> float:
    """:func:`~georef.refine.parabola_vertex` where the middle value is a strict maximum (then within half a
    pixel of it, so that rounding gives the whole-pixel peak back), else 0."""
    return float(parabola_vertex(before, centre, after)) if before < centre > after else 0.0


def _match(image: np.ndarray, template: np.ndarray, subpixel: bool = False) -> tuple[np.ndarray, float, float]:
    """Best position of ``template`` in ``image`` (x, y of its top-left corner; to a fraction of a pixel with
    ``subpixel``), the peak, and the second peak's ratio."""
    scores = cv2.matchTemplate(image, template, cv2.TM_CCOEFF_NORMED)
    _, peak, _, (x, y) = cv2.minMaxLoc(scores)
    if peak <= 0:
        return np.array([x, y], float), float(peak), 1.0
    position = np.array([x, y], float)
    if subpixel and 0 < x < scores.shape[1] - 1:
        position[0] += _vertex(scores[y, x - 1], peak, scores[y, x + 1])
    if subpixel and 0 < y < scores.shape[0] - 1:
        position[1] += _vertex(scores[y - 1, x], peak, scores[y + 1, x])
    away = scores.copy()
    radius = max(2, min(template.shape) // 16)  # the peak's own neighbourhood: its width at this scale
    away[max(0, y - radius):y + radius + 1, max(0, x - radius):x + radius + 1] = -1
    second = float(away.max()) if away.size > 1 else -1.0
    return position, float(peak), max(second, 0.0) / peak


def find_offset(target: MatchImage, chip: MatchImage, claimed: np.ndarray, margin_px: float) -> Offset | None:
    """Locate the target in the chip by correlation of gradient magnitudes, coarse then fine.

    Args:
        target: the target at the working pixel.
        chip: the reference chip at the same pixel.
        claimed: (3, 3) target raster -> chip raster transform of the target's claim.
        margin_px: how far (working pixels) the content may sit from the claim.

    Returns:
        The offset, or None where the images are too small for the margin.
    """
    h, w = target.shape
    if min(h, w) < 4 * COARSE_FACTOR * 8:
        return None
    # The margin, but no wider than offsets at which the target still overlaps the chip (a margin of
    # 10,000 km once asked for a grid of terabytes).
    reach = geometry.apply(np.linalg.inv(claimed), geometry.corners(*chip.shape[::-1]))
    beyond = max(0.0, *(-reach.min(axis=0)), *(reach.max(axis=0) - (w, h)))
    m = int(np.ceil(min(margin_px, beyond + max(w, h))))
    if (h + 2 * m) * (w + 2 * m) > MAX_GRID_PIXELS:
        return None
    # The chip in the target's geometry, over the target's grid grown by the margin on every side.
    grown = claimed @ geometry.translation(-m, -m)
    around = gradient_magnitude(resample_to(chip.pixels, grown, (h + 2 * m, w + 2 * m)))
    own = gradient_magnitude(target.pixels)
    f = COARSE_FACTOR
    small = cv2.resize(own, (w // f, h // f), interpolation=cv2.INTER_AREA)
    small_around = cv2.resize(around, ((w + 2 * m) // f, (h + 2 * m) // f), interpolation=cv2.INTER_AREA)
    if small_around.shape[0] < small.shape[0] or small_around.shape[1] < small.shape[1]:
        return None
    coarse, peak, second = _match(small_around, small)
    if peak < MIN_PEAK or second > MAX_SECOND_PEAK:
        return Offset(coarse * f - m, peak, second)
    # Full resolution, within a few coarse pixels of the coarse peak.
    reach = 2 * f
    x0, y0 = (coarse * f).astype(int) - reach
    x0, y0 = max(0, x0), max(0, y0)
    region = around[y0:y0 + h + 2 * reach, x0:x0 + w + 2 * reach]
    if region.shape[0] < h or region.shape[1] < w:
        return Offset(coarse * f - m, peak, second)
    # To a fraction of a pixel where it seeds the refinement: a closer start saves it a round (it stops once a
    # round barely moves). The coarse peak and the quadrants' check work in whole pixels.
    fine, peak, _ = _match(region, own, subpixel=True)
    top_left = fine + (x0, y0)  # of the target in ``around``
    return Offset(top_left - m, peak, second, _quadrant_spread(around, own, np.round(top_left), reach))


def _quadrant_spread(around: np.ndarray, own: np.ndarray, top_left: np.ndarray, reach: int) -> float:
    """How far the target's quadrants, each correlated near where the whole puts it, sit from there."""
    h, w = own.shape
    spread = 0.0
    for qy in (0, h // 2):
        for qx in (0, w // 2):
            template = own[qy:qy + h // 2, qx:qx + w // 2]
            x0, y0 = (top_left + (qx, qy)).astype(int) - reach
            region = around[max(0, y0):y0 + h // 2 + 2 * reach, max(0, x0):x0 + w // 2 + 2 * reach]
            if region.shape[0] < template.shape[0] or region.shape[1] < template.shape[1]:
                return float("inf")
            found, peak, _ = _match(region, template)
            if peak < MIN_PEAK:
                return float("inf")
            expected = top_left + (qx, qy) - (max(0, x0), max(0, y0))
            spread = max(spread, float(np.hypot(*(found - expected))))
    return spread
