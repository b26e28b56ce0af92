"""Matching two images and fitting a transform to the matches, with a guided second pass.

The first, unguided pass matches the images as they are; its inliers are the
independent evidence that the quality gate counts. The second pass matches
again with each keypoint searched only near where the first fit puts it, which
keeps correct matches that global mutual nearest neighbours lose to look-alikes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from georef import geometry
from georef.fitting import Fit, fit_transform
from georef.matchers import Matcher, Matches
from georef.raster import MatchImage

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FitSettings:
    """How matches become a transform.

    Attributes:
        model: a matrix model name or ``auto`` (see :func:`georef.fitting.fit_transform`).
        threshold_px: inlier threshold of the robust fit, pixels of the second image.
        guided_radius_px: search radius of the guided pass; 0 skips it.
        seed: random seed of the robust fit.
    """

    model: str
    threshold_px: float
    guided_radius_px: float
    seed: int = 0


@dataclass(frozen=True)
class GuidedFit:
    """A fit of image 0 raster -> image 1 raster coordinates.

    Attributes:
        fit: the transform, its inliers and residuals over ``matches``.
        matches: the matches it was fitted to (the guided pass's, where it ran).
        support: inliers of the unguided pass.
        unguided: matches of the unguided pass.
    """

    fit: Fit
    matches: Matches
    support: int
    unguided: int

    @property
    def src(self) -> np.ndarray:
        """(N, 2) matched points of image 0, raster coordinates."""
        return geometry.index_to_raster(self.matches.points0)

    @property
    def dst(self) -> np.ndarray:
        """(N, 2) matched points of image 1, raster coordinates."""
        return geometry.index_to_raster(self.matches.points1)


def fit_matches(matches: Matches, settings: FitSettings) -> Fit:
    """Robust fit of raster coordinates of image 0 onto image 1.

    Raises:
        MatchingError: too few matches, or no model found.
    """
    return fit_transform(geometry.index_to_raster(matches.points0), geometry.index_to_raster(matches.points1),
                         settings.model, settings.threshold_px, settings.seed)


def fit_with_guided_pass(matcher: Matcher, matches: Matches, image0: MatchImage, image1: MatchImage,
                         settings: FitSettings) -> GuidedFit:
    """Fit the matches; then, unless ``guided_radius_px`` is 0, match again guided by the fit and refit.

    Raises:
        MatchingError: too few matches, or no model found.
    """
    fit = fit_matches(matches, settings)
    support = int(fit.inliers.sum())
    if settings.guided_radius_px <= 0:
        return GuidedFit(fit, matches, support, len(matches))
    to_index = geometry.translation(-geometry.PIXEL_CENTRE, -geometry.PIXEL_CENTRE)
    prior = to_index @ fit.matrix @ np.linalg.inv(to_index)
    guided = matcher.match(image0.pixels, image1.pixels, image0.valid, image1.valid, prior=prior,
                           radius=settings.guided_radius_px)
    log.info("guided pass: %d matches", len(guided))
    return GuidedFit(fit_matches(guided, settings), guided, support, len(matches))


def _turn(w: int) -> np.ndarray:
    """(3, 3) raster coordinates of an image ``w`` px wide turned counter-clockwise by 90 degrees -> the
    image's own. np.rot90: new[r, c] = old[c, w - 1 - r], so new raster (x, y) is old (w - y, x)."""
    return np.array([[0.0, -1.0, w], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])


def rotated(image: MatchImage, quarter_turns: int) -> MatchImage:
    """The image turned counter-clockwise by ``quarter_turns`` x 90 degrees, ``to_world`` updated to match."""
    to_world = image.to_world
    pixels, valid = image.pixels, image.valid
    for _ in range(quarter_turns % 4):
        to_world = to_world @ _turn(pixels.shape[1])
        pixels, valid = np.rot90(pixels), np.rot90(valid)
    return MatchImage(np.ascontiguousarray(pixels), np.ascontiguousarray(valid), to_world, image.stretch)


def upright(image: MatchImage, to_map: np.ndarray) -> MatchImage:
    """The image as a north-up map shows it, where ``to_map`` (the image's ``to_world`` frame -> map, y
    north) says it is mirrored or turned: flipped top to bottom where its rows run north (a south-up
    raster), then turned by the quarter turns that bring its rows nearest to north-up; ``to_world``
    updated to match. Matchers find no mirrored image, and none turned far without ``rotation_search``.
    """
    pixels, valid, to_world = image.pixels, image.valid, image.to_world
    if np.linalg.det((to_map @ to_world)[:2, :2]) > 0:  # north-up rasters have det < 0: rows run south
        to_world = to_world @ np.array([[1.0, 0.0, 0.0], [0.0, -1.0, pixels.shape[0]], [0.0, 0.0, 1.0]])
        pixels, valid = pixels[::-1], valid[::-1]
    turns, frame, w, h = [], to_world, pixels.shape[1], pixels.shape[0]
    for _ in range(4):
        east = (to_map @ frame)[:2, 0]  # where the image's x axis points on the map
        turns.append(abs(np.arctan2(east[1], east[0])))
        frame, w, h = frame @ _turn(w), h, w
    return rotated(MatchImage(pixels, valid, to_world, image.stretch), int(np.argmin(turns)))
