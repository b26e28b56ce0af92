"""Estimating the alignment of a target onto a reference, stage by stage.

:func:`estimate_alignment` reads (searching the whole reference where the
target has no usable georeference), matches and fits, refines, matches
full-resolution windows of large targets, and returns an
:class:`~georef.result.Alignment`. Applying it is separate (:mod:`georef.write`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from rasterio.crs import CRS

from georef import geometry, inputs, raster, search, tiles
from georef.errors import BandError, MatchingError, MissingGeoreference
from georef.fitting import Fit, compare_models, fit_transform, fit_warp_robust, held_out_errors
from georef.matchers import create_matcher
from georef.matching import FitSettings, GuidedFit, fit_with_guided_pass, rotated
from georef.options import AlignOptions
from georef.progress import Reporter, Stages
from georef.quality import Evidence, Placement, Quality, assess
from georef.refine import refine
from georef.result import Alignment, TiePoints
from georef.transforms import MODELS, WARP_MODELS, Transform

log = logging.getLogger(__name__)

#: Models compared by held-out residuals in every report.
COMPARED_MODELS = ("shift", "similarity", "affine", "homography", "poly2", "poly3", "tps")


@dataclass(frozen=True)
class Frame:
    """The target as it claims to be, in the reference CRS.

    Attributes:
        footprint: (3, 3) target pixel -> reference map, as the target claims.
        width, height: target size in pixels.
        crs_wkt: the reference CRS.
        metres_per_unit: metres per reference map unit at the target.
    """

    footprint: np.ndarray
    width: int
    height: int
    crs_wkt: str
    metres_per_unit: float


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
    """

    sources: raster.Sources
    frame: Frame
    target: raster.MatchImage
    chip: raster.MatchImage
    pixel_size: float
    margin_m: float
    tiled: bool


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
    """

    fit: Fit
    support: int
    src: np.ndarray
    dst: np.ndarray
    confidence: np.ndarray
    to_target: np.ndarray
    dst_to_world: np.ndarray
    pixel_size: float

    def pixel_to_map(self, model: str, threshold_px: float) -> tuple[np.ndarray, np.ndarray]:
        """(3, 3) target pixel -> map transform, and the (N,) inliers it rests on.

        A warp model keeps the inliers of its own robust fit; its transform is their best affine.
        """
        if model in WARP_MODELS:
            _, inliers = fit_warp_robust(model, self.src, self.dst, self.fit.matrix, threshold_px)
            return geometry.fit_affine_lstsq(geometry.apply(self.to_target, self.src)[inliers],
                                             geometry.apply(self.dst_to_world, self.dst)[inliers]), inliers
        transform = self.dst_to_world @ self.fit.matrix @ np.linalg.inv(self.to_target)
        return transform / transform[2, 2], self.fit.inliers


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
    if options.product_bands != "TCI" and not (inputs.is_product(target) or inputs.is_product(reference)):
        raise BandError(f"band names ({options.product_bands}) select the files of a Sentinel-2 product and neither "
                        "input is one: give band numbers ({param:bands})", target)
    stages = Stages(reporter)
    with raster.bounded_gdal_cache(), inputs.ResolvedInput(target, options.product_bands) as tgt, \
            inputs.ResolvedInput(reference, options.product_bands) as ref:
        scene = read_scene(tgt, ref, options, stages)
        coarse, target_img = match_coarse(scene, options, stages)
        refinement = {}
        if options.refine.enabled:
            coarse, refinement = refine_coarse(coarse, target_img, scene.chip, options, stages)
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
        model_comparison=solution.model_comparison, tiles=windows,
    )


def read_scene(target: str, reference: str, options: AlignOptions, stages: Stages) -> Scene:
    """Open both inputs, locate the target (searching the reference if needed), read the target and the chip."""
    masks = [raster.ExclusionMask.parse(m) if m else None for m in (options.mask_target, options.mask_ref)]
    with raster.open_raster(reference) as ref_ds, raster.open_raster(target) as tgt_ds:
        if ref_ds.crs is None:
            raise MissingGeoreference("reference has no CRS", reference)
        if ref_ds.transform.is_identity:
            raise MissingGeoreference("reference has no geotransform", reference)
        sources = raster.Sources(target, reference, raster.resolve_bands(tgt_ds, options.bands),
                                 raster.resolve_bands(ref_ds, options.bands), *masks)
        margin_m = options.max_shift_m
        if options.global_search or not raster.is_georeferenced(tgt_ds):
            with stages.stage("search"):
                log.info("searching the whole reference for the target")
                known = None
                if raster.is_georeferenced(tgt_ds) and tgt_ds.crs == ref_ds.crs:  # wrong place, right pixel size
                    known = float(np.sqrt(abs(tgt_ds.transform.determinant)))
                claim, margin_m = search.global_search(tgt_ds, ref_ds, sources, options, known)
        else:
            assume = CRS.from_user_input(options.target_crs) if options.target_crs else ref_ds.crs
            claim = raster.georeference(tgt_ds, assume_crs=assume)
        with stages.stage("read"):
            target_img = raster.read_target(tgt_ds, sources.target_bands, options.max_size, sources.target_mask)
            footprint = raster.footprint_in(claim, tgt_ds.width, tgt_ds.height, ref_ds.crs)
            # The chip's pixel is the target's working pixel expressed in reference units.
            pixel_size = float(np.sqrt(abs(np.linalg.det((footprint @ target_img.to_world)[:2, :2]))))
            chip = raster.read_reference_chip(ref_ds, sources.reference_bands, footprint, tgt_ds.width,
                                              tgt_ds.height, margin_m, pixel_size, mask=sources.reference_mask)
        centre = geometry.apply(footprint, [[tgt_ds.width / 2, tgt_ds.height / 2]])[0]
        frame = Frame(footprint, tgt_ds.width, tgt_ds.height, ref_ds.crs.to_wkt(),
                      raster.metres_per_unit(ref_ds.crs, raster.latitude(ref_ds.crs, centre)))
        tiled = options.tiles.size > 0 and max(tgt_ds.width, tgt_ds.height) > options.max_size
    log.info("read target %dx%d and reference chip %dx%d", *target_img.shape[::-1], *chip.shape[::-1])
    return Scene(sources, frame, target_img, chip, pixel_size, margin_m, tiled)


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
    return TiePointFit(result.fit, result.support, result.src, result.dst, result.matches.confidence,
                       candidate.to_world, scene.chip.to_world, scene.pixel_size), candidate


def refine_coarse(coarse: TiePointFit, target: raster.MatchImage, chip: raster.MatchImage, options: AlignOptions,
                  stages: Stages) -> tuple[TiePointFit, dict[str, int]]:
    """Refine the coarse fit by phase correlation; the tie points are judged against the refined transform.

    Returns:
        The refined fit, and the refinement's window counts (empty where too few windows held texture).
    """
    with stages.stage("refine"):
        refined = refine(target, chip, coarse.fit.matrix, _fit_settings(options).model, options.refine)
    if refined is None:
        return coarse, {}
    fit = coarse.fit.with_matrix(refined.matrix, coarse.src, coarse.dst, options.threshold_px, refined.model)
    return replace(coarse, fit=fit), {"windows": len(refined.inliers), "inliers": int(refined.inliers.sum())}


def match_full_resolution(scene: Scene, coarse: TiePointFit, options: AlignOptions,
                          stages: Stages) -> tuple[Solution, dict[str, int]]:
    """Match full-resolution windows placed by the coarse fit; one pooled fit of their tie points.

    Where no window matches, the coarse fit stands.
    """
    coarse_to_map, _ = coarse.pixel_to_map(options.model, options.threshold_px)
    decimation = float(np.sqrt(abs(np.linalg.det(scene.target.to_world[:2, :2]))))
    # Windows share the coarse reads' stretches: the whole scene's, not each window's own.
    plan = tiles.WindowPlan(coarse_to_map, scene.target.stretch, scene.chip.stretch, max(32.0, 4 * decimation))
    with raster.open_raster(scene.sources.target) as ds:
        total = len(tiles.block_aligned_grid(ds, options.tiles) or tiles.window_grid(
            ds.width, ds.height, options.tiles.size, options.tiles.overlap, options.tiles.max_windows))
    with stages.stage("windows", total) as step:
        results = tiles.match_windows(scene.sources, plan, options, step)
    counts = tiles.status_counts(results)
    used = [r for r in results if r.status == "matched"]
    if not used:
        log.warning("no window matched at full resolution; keeping the coarse alignment")
        return solve(coarse, scene, options), counts
    target_px = np.concatenate([r.target_px for r in used])
    map_xy = np.concatenate([r.map_xy for r in used])
    # One pooled fit in a frame whose pixel is a full-resolution target pixel on the reference's axes.
    full_px = float(np.sqrt(abs(np.linalg.det(coarse_to_map[:2, :2]))))
    dst_to_world = geometry.translation(map_xy[:, 0].min(), map_xy[:, 1].max()) @ geometry.scaling(full_px, -full_px)
    dst = geometry.apply(np.linalg.inv(dst_to_world), map_xy)
    with stages.stage("fit"):
        pooled = fit_transform(target_px, dst, _fit_settings(options).model, options.threshold_px, options.seed)
    fine = TiePointFit(pooled, int(pooled.inliers.sum()), target_px, dst,
                       np.concatenate([r.confidence for r in used]), np.eye(3), dst_to_world, full_px)
    return solve(fine, scene, options), counts


def solve(tpf: TiePointFit, scene: Scene, options: AlignOptions) -> Solution:
    """Express a fit in map terms: transform, warp, residuals in target pixels, quality, model comparison."""
    frame = scene.frame
    working_px = float(np.sqrt(abs(np.linalg.det(tpf.to_target[:2, :2]))))  # target pixels per working pixel
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
    quality = assess(Evidence(target_px, residual_px, inliers, tpf.support), _placement(transform, scene, options),
                     (frame.width, frame.height), metres_per_px, options.gate)
    # Compared in working pixel -> reference-grid pixel space, where shift and similarity make sense.
    comparison = compare_models(_subset(tpf.src[inliers]), _subset(tpf.dst[inliers]), COMPARED_MODELS,
                                1 / working_px)
    return Solution(
        model=options.model if options.model in WARP_MODELS else tpf.fit.model,  # auto: the one chosen
        transform=transform, warp=warp, metres_per_px=metres_per_px,
        tie_points=TiePoints(target_px, map_xy, residual_px, inliers, tpf.confidence),
        quality=quality, model_comparison=comparison,
    )


def _placement(transform: np.ndarray, scene: Scene, options: AlignOptions) -> Placement:
    """How far the transform moves the target's corners and changes its pixel size against its claim."""
    frame = scene.frame
    corners = geometry.corners(frame.width, frame.height)
    fitted, claimed = geometry.apply(transform, corners), geometry.apply(frame.footprint, corners)
    if options.rotation_search:  # a turned target's corners land on other corners of its footprint
        moved = np.linalg.norm(fitted[:, None] - claimed[None], axis=2).min(axis=1)
    else:
        moved = np.linalg.norm(fitted - claimed, axis=1)
    scale = np.sqrt(abs(np.linalg.det(transform[:2, :2]) / np.linalg.det(frame.footprint[:2, :2])))
    return Placement(float(moved.max()) * frame.metres_per_unit, float(scale) - 1, scene.margin_m)


def _subset(points: np.ndarray, limit: int = 800) -> np.ndarray:
    """At most ``limit`` points, the same ones for equal-length inputs: keeps the TPS comparison cheap."""
    if len(points) <= limit:
        return points
    return points[np.random.default_rng(0).choice(len(points), limit, replace=False)]
