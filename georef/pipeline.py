"""Estimating the alignment of a target onto a reference, stage by stage.

:func:`estimate_alignment` reads (searching the whole reference where the
target has no usable georeference), matches and fits, refines, matches
full-resolution windows of large targets, and returns an
:class:`~georef.result.Alignment`. Applying it is separate (:mod:`georef.write`).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path

import numpy as np
from rasterio.crs import CRS

from georef import accuracy, correlate, geometry, inputs, raster, search, tiles, warping
from georef.accuracy import Accuracy
from georef.errors import BandError, MatchingError, MissingGeoreference
from georef.fitting import MIN_POINTS, Fit, compare_models, fit_transform, fit_warp_robust, held_out_errors
from georef.matchers import create_matcher, resolve_device
from georef.matching import FitSettings, GuidedFit, fit_with_guided_pass, rotated, upright
from georef.options import AlignOptions
from georef.progress import Reporter, Stages
from georef.quality import Evidence, Placement, Quality, assess, span
from georef.refine import OVERLAP, Refinement, refine, window_log_nfa
from georef.repeats import Repeat, strongest_repeat
from georef.result import Alignment, Search, TiePoints
from georef.significance import log10_nfa, match_alpha
from georef.transforms import MODELS, WARP_MODELS, Transform

log = logging.getLogger(__name__)

#: Models compared by held-out residuals in every report.
COMPARED_MODELS = ("shift", "similarity", "affine", "homography", "poly2", "poly3", "tps")


@dataclass(frozen=True)
class Frame:
    """The target as it claims to be, in the working CRS: the target's where it claims one, else the
    reference's (the reference is read in it, see :func:`georef.warping.reference_in_crs`).

    Attributes:
        footprint: (3, 3) target pixel -> map, as the target claims.
        width, height: target size in pixels.
        crs_wkt: the working CRS.
        metres_per_unit: metres per map unit at the target.
    """

    footprint: np.ndarray
    width: int
    height: int
    crs_wkt: str
    metres_per_unit: float

    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height


@dataclass(frozen=True)
class Scene:
    """What the reading stage found.

    Attributes:
        sources: what to read windows from.
        frame: where the target claims to be.
        target: the target, decimated to the working size.
        chip: the reference around the footprint plus the margin, at the working pixel size.
        pixel_size: the chip's pixel, reference units.
        margin_m: the search margin around the footprint (a global search's uncertainty where one ran).
        tiled: the target is large enough for full-resolution windows.
        coarser_px, finer_px: the pixels of the coarser and the finer input, reference units.
        search: where the target was looked for.
        placed: (3, 3) target pixel -> reference map where the chip was read around (the claim, or a
            search's answer).
    """

    sources: raster.Sources
    frame: Frame
    target: raster.MatchImage
    chip: raster.MatchImage
    pixel_size: float
    margin_m: float
    tiled: bool
    coarser_px: float
    finer_px: float
    search: Search
    placed: np.ndarray

    @property
    def metres_per_px(self) -> float:
        """Ground size of a pixel of ``target`` and ``chip``."""
        return self.pixel_size * self.frame.metres_per_unit

    @property
    def coarser_target_px(self) -> float:
        """The coarser input's pixel, in target pixels (1 where the target is the coarser)."""
        return self.coarser_px / geometry.pixel_scale(self.placed)

    @cached_property
    def repeat(self) -> Repeat:
        """The target's strongest repeat within reach of the search (:mod:`georef.repeats`), in pixels of
        ``target``."""
        reach_m = self.search.reach_m()
        return strongest_repeat(self.target, math.inf if reach_m is None else reach_m / self.metres_per_px)

    def refine_scales(self, decimation: float = 1.0) -> tuple[float, float]:
        """Pixels of the image refined per pixel of the coarser and of the finer input, each at least 1.

        The refinement works at the coarser input's resolution (or at the image's, where that is coarser
        still), with windows in pixels of the finer input (see
        :meth:`georef.options.RefineOptions.at_scale`).

        Args:
            decimation: pixels of the image refined per working pixel: 1 for the working image, the
                target's decimation for its full-resolution windows.
        """
        return (max(1.0, self.coarser_px * decimation / self.pixel_size),
                max(1.0, self.finer_px * decimation / self.pixel_size))


@dataclass(frozen=True)
class Measurements:
    """What a fit finally rests on: correlation windows of the refinement, or keypoint tie points.

    Both sides are in frames of target-pixel units on raster axes: the (possibly turned) target image
    the fit was made on, and the reference chip.

    Attributes:
        src: (N, 2) positions in the target frame.
        dst: (N, 2) where each was measured.
        inliers: (N,) bool, kept by the final fit.
        source: ``"refinement windows"`` or ``"tie points"``.
        size: (width, height) of the target frame.
        log_nfa: log10 NFA of the agreeing windows (see :func:`georef.refine.window_log_nfa`); None for tie points.
        footprint: side of the square each measurement stands for, target pixels (a correlation
            window; 0 for a tie point).
        content: (K, 2) positions and (K, 2) measured positions of the windows the estimate measures the
            images' disagreement on, where they are not the measurements themselves: windows of their ground
            size where the refinement made its own smaller to fit a small image (see
            :attr:`georef.refine.Refinement.content`), or every window of the full-resolution windows'
            refinements, where the fit rests on their inliers; None otherwise.
    """

    src: np.ndarray
    dst: np.ndarray
    inliers: np.ndarray
    source: str
    size: tuple[float, float]
    log_nfa: float | None = None
    footprint: float = 0.0
    content: tuple[np.ndarray, np.ndarray] | None = None

    def span(self) -> float:
        """Share of the frame's width or height, the smaller, that the inliers span (:func:`georef.quality.span`)."""
        return span(self.src[self.inliers], *self.size, self.footprint)

    @property
    def shared(self) -> float:
        """Measurements per independent one: neighbouring refinement windows share their pixels
        (:data:`georef.refine.OVERLAP`); tie points are one each."""
        return OVERLAP if self.source == "refinement windows" else 1.0


@dataclass(frozen=True)
class TiePointFit:
    """A fit between two images, and how their coordinates reach the target and the map.

    Attributes:
        fit: transform of ``src`` onto ``dst`` with inliers and residuals.
        support: inliers of the unguided pass.
        src, dst: (N, 2) matched points, raster coordinates of each image.
        confidence: (N,) match strength.
        to_target: (3, 3) ``src`` coordinates -> full-resolution target pixels.
        dst_to_world: (3, 3) ``dst`` coordinates -> reference map coordinates.
        pixel_size: map units per ``dst`` pixel.
        log_nfa: log10 of the number of false alarms of the unguided inliers (see :mod:`georef.significance`),
            or of the refinement's windows on the correlation path.
        measurements: the refinement's windows, where it ran.
        path: ``"keypoints"`` (the feature matcher) or ``"correlation"`` (see :func:`correlate_coarse`).
    """

    fit: Fit
    support: int
    src: np.ndarray
    dst: np.ndarray
    confidence: np.ndarray
    to_target: np.ndarray
    dst_to_world: np.ndarray
    pixel_size: float
    log_nfa: float = float("inf")
    measurements: Measurements | None = None
    path: str = "keypoints"

    @property
    def working_px(self) -> float:
        """Full-resolution target pixels per ``src`` pixel."""
        return geometry.pixel_scale(self.to_target)

    @property
    def matrix_to_map(self) -> np.ndarray:
        """(3, 3) target pixel -> map transform of the 3x3 fit."""
        transform = self.dst_to_world @ self.fit.matrix @ np.linalg.inv(self.to_target)
        return transform / transform[2, 2]

    def pixel_to_map(self, model: str, threshold_px: float) -> tuple[np.ndarray, np.ndarray]:
        """(3, 3) target pixel -> map transform, and the (N,) inliers it rests on.

        A warp model keeps the inliers of its own robust fit; its transform is their best affine.
        """
        if model in WARP_MODELS:
            _, inliers = fit_warp_robust(model, self.src, self.dst, self.fit.matrix, threshold_px)
            return geometry.fit_affine_lstsq(geometry.apply(self.to_target, self.src)[inliers],
                                             geometry.apply(self.dst_to_world, self.dst)[inliers]), inliers
        return self.matrix_to_map, self.fit.inliers


@dataclass(frozen=True)
class Solution:
    """A fit turned into map terms: what an :class:`Alignment` reports of it."""

    model: str
    transform: np.ndarray
    warp: Transform | None
    metres_per_px: float
    tie_points: TiePoints
    quality: Quality
    model_comparison: dict
    accuracy: Accuracy | None


def estimate_alignment(target: str | Path, reference: str | Path, options: AlignOptions | None = None,
                       reporter: Reporter | None = None) -> Alignment:
    """Match a target against a reference and fit the target-pixel -> reference-map transform.

    Both may be rasters, Sentinel-2 ``.SAFE`` products (folder or zip) or
    comma-separated single-band files (see :mod:`georef.inputs`). A target larger
    than ``options.max_size`` is matched coarse to fine (see :mod:`georef.tiles`);
    one with no georeference, or with ``options.global_search``, is first located
    anywhere in the reference (see :mod:`georef.search`).

    Args:
        target, reference: the inputs.
        options: settings; default :class:`AlignOptions`.
        reporter: told of each stage (progress); default none.

    Raises:
        InvalidOption: a setting out of range.
        RasterReadError, MissingGeoreference, BandError, EmptyDataError,
        NoOverlapError: bad input, named in the message.
        MatchingError: too few matches to fit the model.
    """
    options = options or AlignOptions()
    options.validate()
    options = replace(options, device=resolve_device(options.device))
    if options.product_bands != "TCI" and not (inputs.is_product(target) or inputs.is_product(reference)):
        raise BandError(f"band names ({options.product_bands}) select the files of a Sentinel-2 product and neither "
                        "input is one: give band numbers ({param:bands})", target)
    options = replace(options, mask_target=inputs.product_mask(target, options.mask_target),
                      mask_ref=inputs.product_mask(reference, options.mask_ref))
    stages = Stages(reporter)
    with raster.gdal_env(), inputs.ResolvedInput(target, options.product_bands) as tgt, \
            inputs.ResolvedInput(reference, options.product_bands) as resolved, \
            warping.reference_in_crs(resolved, warping.claimed_crs(tgt, options.target_crs), options.mask_ref,
                                     options.reference_crs) \
            as (ref, mask_ref):
        options = replace(options, mask_ref=mask_ref)
        scene, coarse, target_img = locate(tgt, ref, options, stages)
        refinement = {}
        if coarse.measurements is not None:  # the correlation path refined already
            refinement = {"windows": len(coarse.measurements.inliers), "inliers": int(coarse.support)}
        elif options.refine.enabled:
            coarse, refinement = refine_coarse(coarse, target_img, scene, options, stages)
        windows: dict[str, int] = {}
        if scene.tiled:
            solution, windows = match_full_resolution(scene, coarse, options, stages)
        else:
            solution = solve(coarse, scene, options)
    return Alignment(
        target=str(target), reference=str(reference), matcher=options.matcher, model=solution.model,
        crs_wkt=scene.frame.crs_wkt, transform=solution.transform, width=scene.frame.width,
        height=scene.frame.height, metres_per_px=solution.metres_per_px, tie_points=solution.tie_points,
        quality=solution.quality, warp=solution.warp, timings=dict(stages.seconds), refinement=refinement,
        model_comparison=solution.model_comparison, tiles=windows, accuracy=solution.accuracy,
        search=scene.search, path=coarse.path,
    )


#: Search margin around the claimed footprint when the options name none, metres.
DEFAULT_MARGIN_M = 600.0
#: Radii searched around the claimed position, in turn, where the default margin finds nothing convincing.
WIDER_SEARCH_M = (2500.0, 10000.0)
#: How a search within one of those radii is reported.
WIDENED = "widened around the claimed georeference"
#: A coarse fit whose footprint comes closer than this share of the margin to the searched area's edge may
#: have found only part of the target: the search widens.
EDGE_SLACK = 0.1


def locate(target: str, reference: str, options: AlignOptions,
           stages: Stages) -> tuple[Scene, TiePointFit, raster.MatchImage]:
    """Read and match at the claimed position; where that convinces nobody, search wider around it.

    Convincing: the unguided inliers are significant (``gate.max_log_nfa``) and the fit does not
    reach the edge of the area searched. The search widens only where the margin is the
    default (``max_shift_m`` not set) and the target claims a position. At each wider radius, a
    significant fit that reached beyond the area searched so far is read again around where it puts
    the target (it matched the part of the target the chip held: the whole of it is then in the
    chip); where that does not convince, the reference within the radius is searched.

    Returns:
        The scene, the coarse fit and the target image it fits.

    Raises:
        MatchingError: nothing could be fitted anywhere searched.
    """
    create_matcher(options.matcher, options.weights, options.device)  # bad weights fail now, whichever path runs
    scene = read_scene(target, reference, options, stages)
    best, failure, read_around = None, None, None
    tried: tuple[float, ...] = (scene.search.margin_m,)
    may_widen = options.max_shift_m is None and scene.search.how == "claimed georeference"
    for radius in (None, *WIDER_SEARCH_M):
        if radius is not None:
            if not may_widen:
                break
            tried = (*tried, radius)
            log.info("nothing convincing within %.0f m; searching within %.0f m", tried[-2], radius)
        for around_fit in (True, False) if radius is not None else (False,):
            if around_fit and (best is None or best is read_around or best[1].log_nfa > options.gate.max_log_nfa):
                continue
            try:
                if around_fit:
                    log.info("reading again around the fit that reached beyond the area searched")
                    read_around = best
                    scene = read_scene(target, reference, options, stages, around=radius, tried=tried,
                                       placed=best[1].matrix_to_map)
                elif radius is not None:
                    scene = read_scene(target, reference, options, stages, around=radius, tried=tried)
                candidate = _coarse_fit(scene, options, stages)
            except MatchingError as exc:
                failure = failure or exc
                continue
            # A fit reaching beyond the area searched (the correlation's too) found the target's edge only:
            # the next attempt reads all of it.
            if _convincing(*candidate[:2], options):
                return candidate
            if best is None or candidate[1].log_nfa < best[1].log_nfa:
                best = candidate
    if best is None:
        raise failure
    return best


def _coarse_fit(scene: Scene, options: AlignOptions, stages: Stages) -> tuple[Scene, TiePointFit, raster.MatchImage]:
    """The scene's coarse fit: by correlation where that is clear, else by keypoints."""
    found = correlate_coarse(scene, options, stages) if options.correlation_first else None
    if found is not None:
        return scene, found, scene.target
    return (scene, *match_coarse(scene, options, stages))


def correlate_coarse(scene: Scene, options: AlignOptions, stages: Stages) -> TiePointFit | None:
    """The correlation-first path: the offset from one correlation (:mod:`georef.correlate`), refined.

    Returns:
        The refined fit, resting on the refinement's windows; None where the correlation is weak or
        ambiguous, or the refinement's windows do not confirm it (the matcher is then used).
    """
    if options.rotation_search or not options.refine.enabled:
        return None
    target, chip = scene.target, scene.chip
    claimed = np.linalg.inv(chip.to_world) @ scene.placed @ target.to_world
    with stages.stage("correlate"):
        margin_px = scene.margin_m / scene.metres_per_px
        offset = correlate.find_offset(target, chip, claimed, margin_px)
    scale, window_scale = scene.refine_scales()
    settings = options.refine.at_scale(scale, min(target.shape), window_scale)
    # Quadrants within the refinement's capture range of the whole: its windows then reach the truth and
    # confirm it or not.
    if offset is None or not offset.convincing(settings.max_offset_px):
        log.info("correlation: no clear peak; matching keypoints")
        return None
    start = claimed @ geometry.translation(*offset.shift)
    with stages.stage("refine"):
        refined = refine(target, chip, start, _fit_settings(options).model, settings, options.device,
                         _content_window(scene, options))
    if refined is None or refined.log_nfa > options.gate.max_log_nfa:
        log.info("correlation: the refinement's windows do not confirm the offset; matching keypoints")
        return None
    if geometry.mean_corner_distance(refined.matrix, start, *target.shape[::-1]) > settings.max_offset_px:
        log.info("correlation: the refinement moved away from the offset; matching keypoints")
        return None
    log.info("correlation: offset (%.1f, %.1f) px, peak %.2f, second peak %.0f%% of it; confirmed by %d of %d "
             "windows", *offset.shift, offset.peak, 100 * offset.second, refined.inliers.sum(), refined.tried)
    residuals = np.linalg.norm(geometry.apply(refined.matrix, refined.target_px) - refined.chip_px, axis=1)
    fit = Fit(refined.model, refined.matrix, refined.inliers, residuals)
    windows = _window_measurements(refined, target, geometry.pixel_scale(target.to_world), settings.window)
    return TiePointFit(fit, int(refined.inliers.sum()), refined.target_px, refined.chip_px, refined.response,
                       target.to_world, chip.to_world, scene.pixel_size, refined.log_nfa, windows, "correlation")


def _content_window(scene: Scene, options: AlignOptions) -> int:
    """Side of the refinement's windows at their ground size, in pixels of the working images."""
    return options.refine.ground_window(scene.finer_px / scene.pixel_size)


def _window_measurements(refined: Refinement, image: raster.MatchImage, scale: float, window: int) -> Measurements:
    """The refinement's ``window``-pixel windows in target-pixel units; ``scale``: target pixels per pixel of
    ``image``."""
    content = None if refined.content is None else (refined.content[0] * scale, refined.content[1] * scale)
    return Measurements(refined.target_px * scale, refined.chip_px * scale, refined.inliers, "refinement windows",
                        (image.shape[1] * scale, image.shape[0] * scale), refined.log_nfa, window * scale, content)


def _convincing(scene: Scene, coarse: TiePointFit, options: AlignOptions) -> bool:
    if coarse.log_nfa > options.gate.max_log_nfa:
        return False
    gap = scene.search.edge_gap(coarse.matrix_to_map, scene.frame.width, scene.frame.height)
    return gap is None or gap * scene.frame.metres_per_unit > EDGE_SLACK * scene.search.margin_m


def read_scene(target: str, reference: str, options: AlignOptions, stages: Stages, around: float | None = None,
               tried: tuple[float, ...] = (), placed: np.ndarray | None = None) -> Scene:
    """Open both inputs, place the target, read it and the reference chip around it.

    The target is placed where it claims to be; or, without a georeference (or with
    ``global_search``), where a search of the whole reference (or around ``approx_center``)
    finds it; or, with ``around``, where a search within that radius (metres) of its claimed
    position finds it, or at ``placed`` (target pixel -> reference map), where a fit found it.
    """
    masks = [raster.ExclusionMask.parse(m) if m else None for m in (options.mask_target, options.mask_ref)]
    with raster.open_raster(reference) as ref_ds, raster.open_raster(target) as tgt_ds:
        if ref_ds.crs is None:
            raise MissingGeoreference("reference has no CRS; give it with {param:reference_crs}", reference)
        if ref_ds.transform.is_identity:
            raise MissingGeoreference("reference has no geotransform", reference)
        for mask, ds, path, role in zip(masks, (tgt_ds, ref_ds), (target, reference), ("target", "reference")):
            if mask is not None:
                mask.check_covers(ds, path, role)
        sources = raster.Sources(target, reference, raster.resolve_bands(tgt_ds, options.bands),
                                 raster.resolve_bands(ref_ds, options.bands), *masks)
        size = (tgt_ds.width, tgt_ds.height)
        claimed = None
        if raster.is_georeferenced(tgt_ds):
            assume = CRS.from_user_input(options.target_crs) if options.target_crs else ref_ds.crs
            claimed = raster.footprint_in(raster.georeference(tgt_ds, assume_crs=assume), *size, ref_ds.crs, target)
        if around is not None and placed is not None:
            searched = Search(WIDENED, DEFAULT_MARGIN_M, around, _box(claimed, size, around, ref_ds.crs), tried)
        elif claimed is None or options.global_search or around is not None:
            with stages.stage("search"):
                placed, searched = _search(tgt_ds, ref_ds, sources, options, claimed, around, tried)
        else:
            margin = options.max_shift_m if options.max_shift_m is not None else DEFAULT_MARGIN_M
            placed = claimed
            searched = Search("claimed georeference", margin, None, _box(claimed, size, margin, ref_ds.crs),
                              tried or (margin,))
        frame = _frame(claimed if claimed is not None and not options.global_search else placed, size, ref_ds.crs)
        if claimed is None and ref_ds.crs.is_geographic:
            _suggest_projected(frame, target)
        with stages.stage("read"):
            target_img, chip, pixel_size, coarser, finer = _read_images(tgt_ds, ref_ds, sources, placed,
                                                                        searched.margin_m, options.max_size)
        tiled = options.tiles.size > 0 and max(size) > options.max_size
    log.info("read target %dx%d and reference chip %dx%d", *target_img.shape[::-1], *chip.shape[::-1])
    return Scene(sources, frame, target_img, chip, pixel_size, searched.margin_m, tiled, coarser, finer, searched,
                 placed)


def _search(tgt_ds, ref_ds, sources: raster.Sources, options: AlignOptions, claimed: np.ndarray | None,
            around: float | None, tried: tuple[float, ...]) -> tuple[np.ndarray, Search]:
    """Place the target by a search: around its claimed position, around ``approx_center``, or everywhere."""
    size = (tgt_ds.width, tgt_ds.height)
    known = None if claimed is None else geometry.pixel_scale(claimed)
    if around is not None:
        box = _box(claimed, size, around, ref_ds.crs)
        found, margin = search.global_search(tgt_ds, ref_ds, sources, options, known, around=(box, around))
        return raster.footprint_in(found, *size, ref_ds.crs), Search(WIDENED, margin, around, box, tried)
    log.info("searching the whole reference for the target")
    found, margin = search.global_search(tgt_ds, ref_ds, sources, options, known)
    how = "around the approximate centre" if options.approx_center else "whole reference"
    return raster.footprint_in(found, *size, ref_ds.crs), Search(how, margin, None, None, (margin,))


def _box(footprint: np.ndarray, size: tuple[int, int], reach_m: float, crs: CRS) -> tuple[float, ...]:
    """(x0, y0, x1, y1): the footprint's bounding box grown by ``reach_m`` on every side, in ``crs`` units."""
    corners = geometry.apply(footprint, geometry.corners(*size))
    reach = reach_m / raster.metres_per_unit(crs, corners.mean(axis=0))
    (x0, y0), (x1, y1) = corners.min(axis=0) - reach, corners.max(axis=0) + reach
    return (float(x0), float(y0), float(x1), float(y1))


def _suggest_projected(frame: Frame, target: str) -> None:
    """Warn that a target placed without a CRS of its own gets an affine in degrees, and name its UTM zone."""
    lon, lat = geometry.apply(frame.footprint, [[frame.width / 2, frame.height / 2]])[0]
    utm = (32600 if lat >= 0 else 32700) + min(60, int((lon + 180) // 6) + 1)
    log.warning("%s: placed in the reference's geographic CRS, where one affine in degrees bends (metres at the "
                "corners of a 10 km scene); give it a projected CRS (--target-crs, or target_crs in Python), "
                "e.g. EPSG:%d", target, utm)


def _frame(footprint: np.ndarray, size: tuple[int, int], crs: CRS) -> Frame:
    centre = geometry.apply(footprint, [[size[0] / 2, size[1] / 2]])[0]
    return Frame(footprint, size[0], size[1], crs.to_wkt(), raster.metres_per_unit(crs, centre))


def _read_images(tgt_ds, ref_ds, sources: raster.Sources, footprint: np.ndarray, margin_m: float,
                 max_size: int) -> tuple[raster.MatchImage, raster.MatchImage, float, float, float]:
    """The target at the working pixel and the reference chip around ``footprint`` at the same pixel.

    Returns:
        Target, chip, the working pixel, and the coarser and the finer input's pixels (reference units).
    """
    target_px = geometry.pixel_scale(footprint)
    reference_px = float(np.sqrt(abs(ref_ds.transform.determinant)))
    long_side = max(tgt_ds.width, tgt_ds.height)
    working = raster.working_pixel(target_px, reference_px, long_side, max_size)
    target_img = upright(raster.read_target(tgt_ds, sources.target_bands, round(long_side * target_px / working),
                                            sources.target_mask), footprint)
    # The chip's pixel is the target's working pixel expressed in reference units.
    pixel_size = geometry.pixel_scale(footprint @ target_img.to_world)
    chip = raster.read_reference_chip(ref_ds, sources.reference_bands, footprint, tgt_ds.width, tgt_ds.height,
                                      margin_m, pixel_size, mask=sources.reference_mask)
    return target_img, chip, pixel_size, max(target_px, reference_px), min(target_px, reference_px)


def _fit_settings(options: AlignOptions) -> FitSettings:
    # Warp models start from a robust affine; the warp itself is fitted to its inliers later.
    model = "affine" if options.model in WARP_MODELS else options.model
    return FitSettings(model, options.threshold_px, options.guided_radius_px, options.seed)


def match_coarse(scene: Scene, options: AlignOptions, stages: Stages) -> tuple[TiePointFit, raster.MatchImage]:
    """Match the working target (and, with ``rotation_search``, its quarter turns) against the chip and fit.

    Returns:
        The fit, and the target image it fits (the quarter turn with the most unguided inliers).

    Raises:
        MatchingError: no candidate could be fitted.
    """
    matcher = create_matcher(options.matcher, options.weights, options.device)
    settings = _fit_settings(options)
    turns = (0, 1, 2, 3) if options.rotation_search else (0,)
    best: tuple[GuidedFit, raster.MatchImage] | None = None
    failure = None
    for k in turns:
        candidate = rotated(scene.target, k)
        with stages.stage("match"):
            matches = matcher.match(candidate.pixels, scene.chip.pixels, candidate.valid, scene.chip.valid)
        log.info("%s: %d matches (%d / %d keypoints)", options.matcher, len(matches), matches.keypoints0,
                 matches.keypoints1)
        try:
            with stages.stage("fit"):
                result = fit_with_guided_pass(matcher, matches, candidate, scene.chip, settings)
        except MatchingError as exc:
            failure = exc
            continue
        if options.rotation_search:
            log.info("rotation %d deg: %d unguided inliers", 90 * k, result.support)
        if best is None or result.support > best[0].support:
            best = (result, candidate)
    if best is None:
        raise MatchingError(f"no alignment found: {failure.message}", scene.sources.target)
    result, candidate = best
    # Chance agreement: a match anywhere in the valid chip, within the threshold of the model.
    alpha = match_alpha(options.threshold_px, float(scene.chip.valid.sum()))
    log_nfa = log10_nfa(result.unguided, result.support, alpha, MIN_POINTS[settings.model if settings.model in
                                                                           MIN_POINTS else "affine"])
    log.info("unguided: %d of %d matches agree, log10 NFA %.1f", result.support, result.unguided, log_nfa)
    return TiePointFit(result.fit, result.support, result.src, result.dst, result.matches.confidence,
                       candidate.to_world, scene.chip.to_world, scene.pixel_size, log_nfa), candidate


def refine_coarse(coarse: TiePointFit, target: raster.MatchImage, scene: Scene, options: AlignOptions,
                  stages: Stages) -> tuple[TiePointFit, dict[str, int]]:
    """Refine the coarse fit by phase correlation; the tie points are judged against the refined transform.

    The refinement works at the coarser input's resolution (see :meth:`RefineOptions.at_scale`).

    Returns:
        The refined fit, and the refinement's window counts (empty where too few windows held texture).
    """
    scale, window_scale = scene.refine_scales()
    settings = options.refine.at_scale(scale, min(target.shape), window_scale)
    with stages.stage("refine"):
        refined = refine(target, scene.chip, coarse.fit.matrix, _fit_settings(options).model, settings,
                         options.device, _content_window(scene, options))
    if refined is None:
        return coarse, {}
    fit = coarse.fit.with_matrix(refined.matrix, coarse.src, coarse.dst, options.threshold_px, refined.model)
    windows = _window_measurements(refined, target, coarse.working_px, settings.window)
    return (replace(coarse, fit=fit, measurements=windows),
            {"windows": len(refined.inliers), "inliers": int(refined.inliers.sum())})


def match_full_resolution(scene: Scene, coarse: TiePointFit, options: AlignOptions,
                          stages: Stages) -> tuple[Solution, dict[str, int]]:
    """Match full-resolution windows placed by the coarse fit; one pooled fit of their tie points.

    Windows come in rounds spread over the target (see :func:`georef.tiles.window_rounds`) until
    the pooled fit is precise enough (``options.tiles.target_fit_ce90_px``). Where no window
    matches, the coarse fit stands.
    """
    coarse_to_map, _ = coarse.pixel_to_map(options.model, options.threshold_px)
    decimation = geometry.pixel_scale(scene.target.to_world)
    with raster.open_raster(scene.sources.target) as ds:
        grid = tiles.target_grid(ds, options.tiles)
    # Windows share the coarse reads' stretches: the whole scene's, not each window's own.
    # Windows are read at full resolution: their refinement works at the coarser input's resolution, with
    # correlation windows of the finer input's ground size.
    plan = tiles.WindowPlan(coarse_to_map, tuple(grid), scene.target.stretch, scene.chip.stretch,
                            max(32.0, 4 * decimation), *scene.refine_scales(decimation),
                            direct=options.refine.enabled and coarse.measurements is not None)
    settings = options.tiles
    rounds = tiles.window_rounds(grid, settings.first_windows, settings.more_windows)
    if not settings.target_fit_ce90_px:
        rounds = [grid]
    results: list[tiles.WindowResult] = []
    solution = None
    with stages.stage("windows", len(grid)) as step:
        for windows in rounds:
            results += tiles.match_windows(scene.sources, replace(plan, windows=tuple(windows)), options, step)
            solution = _pooled_solution(results, coarse, scene, plan, options)
            if solution is not None and _precise_enough(solution, settings.target_fit_ce90_px):
                break
    counts = tiles.status_counts(results, len(grid))
    if solution is None:
        log.warning("no window matched at full resolution; keeping the coarse alignment")
        return solve(coarse, scene, options), counts
    return solution, counts


def _precise_enough(solution: Solution, target_px: float) -> bool:
    fit_ce90 = solution.accuracy.fit_ce90_px if solution.accuracy is not None else math.inf
    return solution.quality.passed and fit_ce90 <= target_px


def _pooled_solution(results: list[tiles.WindowResult], coarse: TiePointFit, scene: Scene, plan: tiles.WindowPlan,
                     options: AlignOptions) -> Solution | None:
    """One robust fit of the tie points of every matched window; None where none matched, or where their
    tie points together agree on no transform."""
    used = [r for r in results if r.status in tiles.USED]
    if not used:
        return None
    target_px = np.concatenate([r.target_px for r in used])
    map_xy = np.concatenate([r.map_xy for r in used])
    # One pooled fit in a frame whose pixel is a full-resolution target pixel on the reference's axes.
    full_px = geometry.pixel_scale(plan.coarse_to_map)
    dst_to_world = geometry.translation(map_xy[:, 0].min(), map_xy[:, 1].max()) @ geometry.scaling(full_px, -full_px)
    dst = geometry.apply(np.linalg.inv(dst_to_world), map_xy)
    try:
        pooled = fit_transform(target_px, dst, _fit_settings(options).model, options.threshold_px, options.seed)
    except MatchingError:
        log.warning("the %d matched windows agree on no transform", len(used))
        return None
    if options.refine.enabled:
        settings = options.refine.at_scale(plan.refine_scale, options.tiles.size, plan.window_scale)
        windows_nfa = window_log_nfa(sum(r.tried for r in used), sum(r.agreeing for r in used), settings.threshold_px,
                                     settings.window, pooled.model)
        # The disagreement is measured over every correlation window, as on one image, not only over the
        # windows' inliers that the pooled fit rests on.
        windows_px = np.concatenate([r.windows_target_px for r in used])
        windows_dst = geometry.apply(np.linalg.inv(dst_to_world), np.concatenate([r.windows_map_xy for r in used]))
        measured = Measurements(target_px, dst, pooled.inliers, "refinement windows", scene.frame.size, windows_nfa,
                                content=(windows_px, windows_dst) if len(windows_px) else None)
    else:
        measured = Measurements(target_px, dst, pooled.inliers, "tie points", scene.frame.size)
    fine = TiePointFit(pooled, int(pooled.inliers.sum()), target_px, dst,
                       np.concatenate([r.confidence for r in used]), np.eye(3), dst_to_world, full_px,
                       coarse.log_nfa, measured)
    return solve(fine, scene, options)


def solve(tpf: TiePointFit, scene: Scene, options: AlignOptions) -> Solution:
    """Express a fit in map terms: transform, warp, residuals in target pixels, quality, model comparison."""
    frame = scene.frame
    working_px = tpf.working_px
    metres_per_px = tpf.pixel_size * frame.metres_per_unit / working_px
    target_px = geometry.apply(tpf.to_target, tpf.src)
    map_xy = geometry.apply(tpf.dst_to_world, tpf.dst)
    transform, inliers = tpf.pixel_to_map(options.model, options.threshold_px)
    warp = None
    if options.model in WARP_MODELS:
        # The pixel -> map model is fitted on the inliers: same points, map units.
        warp = MODELS[options.model].fit(target_px[inliers], map_xy[inliers])
        to_px = frame.metres_per_unit / metres_per_px
        residual_px = np.linalg.norm(warp.apply(target_px) - map_xy, axis=1) * to_px
        if options.model == "tps":  # it interpolates its own points: only held-out residuals say anything
            residual_px[inliers] = held_out_errors("tps", target_px[inliers], map_xy[inliers]) * to_px
    else:
        residual_px = tpf.fit.residuals * working_px
    model = options.model if options.model in WARP_MODELS else tpf.fit.model  # auto: the one chosen
    # The fit's own frame (a turned target's, with rotation_search), in target-pixel units.
    frame_size = np.ptp(geometry.apply(np.linalg.inv(tpf.to_target), geometry.corners(*frame.size)), axis=0)
    measured = tpf.measurements or Measurements(tpf.src[inliers] * working_px, tpf.dst[inliers] * working_px,
                                                np.ones(int(inliers.sum()), bool), "tie points",
                                                tuple(frame_size * working_px))
    estimate = accuracy.estimate(measured.src, measured.dst, measured.inliers, model, measured.size, metres_per_px,
                                 measured.source, shared=measured.shared,
                                 finer_share=scene.finer_px / scene.coarser_px, content=measured.content)
    repeat = scene.repeat
    evidence = Evidence(target_px, residual_px, inliers, tpf.support, tpf.log_nfa, measured.log_nfa,
                        None if estimate is None else estimate.ce90_px, measured.span(),
                        options.refine.enabled and options.gate.confirm, repeat.peak,
                        float(np.hypot(*repeat.shift)) * scene.metres_per_px, scene.coarser_target_px)
    quality = assess(evidence, _placement(transform, scene, options), frame.size, metres_per_px,
                     options.gate)
    # Compared in working pixel -> reference-grid pixel space, where shift and similarity make sense.
    comparison = compare_models(_subset(tpf.src[inliers]), _subset(tpf.dst[inliers]), COMPARED_MODELS,
                                1 / working_px)
    return Solution(
        model=model, transform=transform, warp=warp, metres_per_px=metres_per_px,
        tie_points=TiePoints(target_px, map_xy, residual_px, inliers, tpf.confidence),
        quality=quality, model_comparison=comparison, accuracy=estimate,
    )


def _placement(transform: np.ndarray, scene: Scene, options: AlignOptions) -> Placement:
    """How far the transform moves the target's corners and changes its pixel size against its claim."""
    frame = scene.frame
    gap = scene.search.edge_gap(transform, frame.width, frame.height)
    outside = 0.0 if gap is None else max(0.0, -gap) * frame.metres_per_unit
    return Placement.of(transform, frame.footprint, frame.size, frame.metres_per_unit, options.rotation_search,
                        outside)


def _subset(points: np.ndarray, limit: int = 300) -> np.ndarray:
    """At most ``limit`` points, the same ones for equal-length inputs: keeps the TPS comparison cheap."""
    if len(points) <= limit:
        return points
    return points[np.random.default_rng(0).choice(len(points), limit, replace=False)]
