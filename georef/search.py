"""Finding a target with no georeference (or a wildly wrong one) anywhere in the reference.

The reference, or the part of it around ``--approx-center``, is read at a coarse
pixel size and matched against the target at several candidate target pixel
sizes (when the target's own is unknown); the best-supported fit becomes the
target's approximate georeference, which the normal coarse-to-fine alignment
then refines.
"""

from __future__ import annotations

import logging

import numpy as np
from rasterio.io import DatasetReader
from rasterio.warp import transform as transform_coords
from rasterio.windows import Window

from georef import geometry, raster
from georef.errors import EmptyDataError, MatchingError, NoOverlapError
from georef.fitting import fit_transform
from georef.matchers import create_matcher
from georef.matching import rotated
from georef.options import AlignOptions
from georef.significance import log10_nfa, match_alpha
from georef.tiles import window_grid

log = logging.getLogger(__name__)

#: Long side of the reference image searched, pixels.
SEARCH_SIZE = 3072
#: Fewest inliers a search result needs: it is a claim for the full alignment to check, and look-alikes
#: far away are many, so it asks for more than the gate's floor.
SEARCH_MIN_INLIERS = 12
#: Candidate target pixel sizes, in reference pixels, when the target's is unknown (steps of sqrt 2:
#: learned matchers tolerate about 20 % of scale difference).
SCALES = tuple(2 ** (k / 2) for k in range(9))


def lonlat_to(ref_ds: DatasetReader, lon: float, lat: float) -> np.ndarray:
    """(2,) a longitude/latitude in the reference's CRS."""
    xs, ys = transform_coords("EPSG:4326", ref_ds.crs, [lon], [lat])
    return np.array([xs[0], ys[0]])


def _region(ref_ds: DatasetReader, box: tuple[float, ...] | None) -> Window | None:
    """The reference window to search: all of it, or the part in a box (x0, y0, x1, y1) of its CRS; None if
    that misses it."""
    if box is None:
        return Window(0, 0, ref_ds.width, ref_ds.height)
    x0, y0, x1, y1 = box
    cols, rows = zip(*(~ref_ds.transform * (x, y) for x in (x0, x1) for y in (y0, y1)))
    c0, r0 = max(0, int(min(cols))), max(0, int(min(rows)))
    c1, r1 = min(ref_ds.width, int(max(cols)) + 1), min(ref_ds.height, int(max(rows)) + 1)
    if c1 - c0 < 8 or r1 - r0 < 8:
        return None
    return Window(c0, r0, c1 - c0, r1 - r0)


def _around(ref_ds: DatasetReader, centre: np.ndarray, radius_m: float) -> tuple[float, ...]:
    """(x0, y0, x1, y1): the square of half-side ``radius_m`` around a point of the reference's CRS."""
    radius = radius_m / raster.metres_per_unit(ref_ds.crs, centre)
    return (centre[0] - radius, centre[1] - radius, centre[0] + radius, centre[1] + radius)


def _parts(region: Window, side: int) -> list[Window]:
    """Windows of ``side`` px overlapping by half, covering ``region`` (the region itself if smaller)."""
    if side >= max(region.width, region.height):
        return [region]
    return [Window(region.col_off + w.col_off, region.row_off + w.row_off, w.width, w.height)
            for w in window_grid(int(region.width), int(region.height), side, side // 2)]


def _plausible(matrix: np.ndarray, tolerance: float = 0.3) -> bool:
    """A north-up target at about the candidate pixel size: near-unit scale, little rotation or shear.

    Random matches also reach a dozen RANSAC inliers; their fits are arbitrary, which this catches.
    """
    singular = np.linalg.svd(matrix[:2, :2], compute_uv=False)
    rotation = np.degrees(np.arctan2(matrix[1, 0], matrix[0, 0]))
    return bool(np.all(np.abs(singular - 1) < tolerance) and abs(rotation) < 20)


def _match_part(matcher, target_img: raster.MatchImage, chip: raster.MatchImage,
                options: AlignOptions) -> tuple[float, int, np.ndarray] | None:
    """One part of the reference searched for the target: log10 NFA, inliers and the target pixel -> map
    transform of a plausible fit; None where none fits."""
    matches = matcher.match(target_img.pixels, chip.pixels, target_img.valid, chip.valid)
    try:
        fit = fit_transform(geometry.index_to_raster(matches.points0), geometry.index_to_raster(matches.points1),
                            "affine", options.threshold_px, options.seed)
    except MatchingError:
        return None
    if not _plausible(fit.matrix):
        log.debug("search: implausible fit (scale or shear), ignored")
        return None
    support = int(fit.inliers.sum())
    # Ranked by significance: parts and scales differ in how many matches they offer.
    nfa = log10_nfa(len(matches), support, match_alpha(options.threshold_px, float(chip.valid.sum())), 3)
    return nfa, support, chip.to_world @ fit.matrix @ np.linalg.inv(target_img.to_world)


def global_search(tgt_ds: DatasetReader, ref_ds: DatasetReader, sources: raster.Sources, options: AlignOptions,
                  target_pixel_size: float | None = None,
                  around: tuple[tuple[float, ...], float] | None = None) -> tuple[raster.Georeference, float]:
    """Locate the target in the reference.

    Args:
        tgt_ds, ref_ds: open datasets (the reference north-up and georeferenced).
        sources: bands and exclusion masks to read.
        options: matcher, threshold, gate, max_size, ``rotation_search`` (each quarter turn of the target is
            looked for), and ``approx_center``, the (lon, lat) to search around (None searches the whole
            reference).
        target_pixel_size: the target's pixel size in reference units if known; else candidates are tried.
        around: the area to search instead: (x0, y0, x1, y1) in the reference CRS, and the radius in metres
            around the claimed footprint that it is.

    Returns:
        The found georeference, and its uncertainty in metres (a few search pixels).

    Raises:
        MatchingError: no candidate found enough support.
    """
    matcher = create_matcher(options.matcher, options.weights, options.device)
    ref_px = abs(ref_ds.transform.a)
    mpu = raster.metres_per_unit(ref_ds.crs)
    candidates = [target_pixel_size] if target_pixel_size else [ref_px * s for s in SCALES]
    long_side = max(tgt_ds.width, tgt_ds.height)
    targets: dict[int, raster.MatchImage] = {}  # the target decimated to a long side, by that side
    # A target of unknown orientation is looked for in each quarter turn: the matchers find few turned images.
    turns = (0, 1, 2, 3) if options.rotation_search else (0,)
    best = None
    for size in candidates:
        if around is not None:
            region = _region(ref_ds, around[0])
        elif options.approx_center is not None:
            region = _region(ref_ds, _around(ref_ds, lonlat_to(ref_ds, *options.approx_center),
                                             1.5 * long_side * size * mpu + 5000))
            if region is None:
                raise NoOverlapError(f"the approximate centre {options.approx_center[0]:g} "
                                     f"{options.approx_center[1]:g} ({{param:approx_center}}) is outside it",
                                     ref_ds.name)
        else:
            region = _region(ref_ds, None)
        if region is None:
            break
        # Mutual matching drowns in look-alikes over an area much larger than the target:
        # the region is searched in overlapping parts twice the target's extent.
        part = int(2 * long_side * size / ref_px)
        for window in _parts(region, part):
            extent = max(window.width, window.height) * ref_px
            # The pixel the alignment itself matches at (a coarse or small target enlarged, not matched as a
            # thumbnail), unless the part searched would then exceed SEARCH_SIZE.
            working = max(raster.working_pixel(size, ref_px, long_side, options.max_size), extent / SEARCH_SIZE)
            target_long = long_side * size / working
            if target_long < 64:
                log.debug("search at %.3g: target only %d px at the search scale, skipped", size, target_long)
                continue
            target_img = targets.get(round(target_long))
            if target_img is None:  # parts of one scale share it: read once
                target_img = targets[round(target_long)] = raster.read_target(
                    tgt_ds, sources.target_bands, round(target_long), sources.target_mask)
            try:
                chip = raster.read_reference_chip(ref_ds, sources.reference_bands,
                                                  geometry.to_matrix(ref_ds.window_transform(window)),
                                                  window.width, window.height, 0.0, working,
                                                  mask=sources.reference_mask)
            except EmptyDataError:
                continue
            for turned in (rotated(target_img, k) for k in turns):
                found = _match_part(matcher, turned, chip, options)
                if found is not None:
                    log.info("search: target pixel %.3g, search pixel %.3g: %d inliers, log10 NFA %.1f", size,
                             working, found[1], found[0])
                    if best is None or found[0] < best[0]:
                        best = (*found, working)
    if best is None or best[0] > options.gate.max_log_nfa or best[1] < max(options.gate.min_inliers, SEARCH_MIN_INLIERS):
        found = "nothing" if best is None else f"{best[1]} inliers, log10 NFA {best[0]:.1f} at best"
        where = "a global search" if around is None else f"a search within {around[1]:.0f} m of its position"
        raise MatchingError(f"not found in the reference by {where} ({found}); give its approximate centre "
                            "({param:approx_center})", tgt_ds.name)
    nfa, support, pixel_to_map, working = best
    log.info("search: found with %d inliers (log10 NFA %.1f)", support, nfa)
    return raster.Georeference(pixel_to_map / pixel_to_map[2, 2], ref_ds.crs, "search"), 8 * working * mpu
