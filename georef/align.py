"""Estimating the alignment of a target onto a reference.

:func:`estimate_alignment` reads, matches and fits, and returns an
:class:`Alignment`: a plain, serialisable result (transform, tie points,
residuals, quality). Applying it is separate (:mod:`georef.write`);
:func:`align_file` joins the two for the CLI and the plugin.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import rasterio
from rasterio.crs import CRS

from georef import geometry, inputs, raster, search, tiles
from georef.errors import MatchingError, MissingGeoreference, QualityGateFailed
from georef.fitting import fit_transform
from georef.matchers import create_matcher
from georef.models import WARP_MODELS, compare_models, fit_model, fit_model_robust, held_out_errors
from georef.quality import Quality, QualityGate, assess
from georef.refine import refine
from georef.tiles import TileOptions

log = logging.getLogger(__name__)


@dataclass
class AlignOptions:
    """Settings of one alignment.

    Attributes:
        matcher: matcher name (see :data:`georef.matchers.MATCHERS`).
        model: transform model: ``auto`` (a similarity unless the tie points demand an
            affine, see :func:`georef.fitting.select_model`), one of
            :data:`georef.fitting.MODELS` (a 3x3 matrix),
            or of :data:`georef.models.WARP_MODELS` (polynomial or thin-plate spline,
            fitted to the pooled inlier tie points and carried by GCPs).
        bands: 1-based bands to read from both rasters; default true colour.
        max_shift_m: search margin around the target's footprint, in metres.
        threshold_px: inlier threshold of the robust fit, in working pixels.
        guided_radius_px: search radius of the guided second matching pass; 0 skips it.
        refine: refine the fit to sub-pixel precision by local phase correlation.
        rotation_search: also try the target turned by 90, 180 and 270 degrees; keep
            the turn with the most unguided inliers.
        max_size: long side, in pixels, above which the target is matched decimated.
        weights: weight file for the matcher; default from the registry.
        target_crs: CRS to assume for a target that has a geotransform but no CRS.
        gate: quality thresholds.
        seed: random seed of the robust fit.
        tiles: coarse-to-fine window matching of targets larger than ``max_size``.
        mask_target, mask_ref: exclusion masks, ``PATH`` or ``PATH:V1,V2`` (values to exclude).
        product_bands: bands of a Sentinel-2 product: ``"TCI"`` or e.g. ``"B04,B03,B02"``.
        global_search: ignore the target's georeference and search the whole reference
            (automatic for a target without one).
        approx_center: (lon, lat) around which the global search looks.
    """

    matcher: str = "xfeat"
    model: str = "auto"
    bands: tuple[int, ...] | None = None
    max_shift_m: float = 600.0
    threshold_px: float = 2.0
    guided_radius_px: float = 4.0
    refine: bool = True
    rotation_search: bool = False
    max_size: int = 2048
    weights: str | None = None
    target_crs: str | None = None
    gate: QualityGate = field(default_factory=QualityGate)
    seed: int = 0
    tiles: TileOptions = field(default_factory=TileOptions)
    mask_target: str | None = None
    mask_ref: str | None = None
    product_bands: str = "TCI"
    global_search: bool = False
    approx_center: tuple[float, float] | None = None


@dataclass
class TiePoints:
    """Matched points, target pixels against reference map coordinates.

    Attributes:
        target_px: (N, 2) float64 raster coordinates in the full-resolution target.
        map_xy: (N, 2) float64 matched positions in the reference CRS.
        residual_px: (N,) float64 distance to the fitted transform, in target pixels.
        inlier: (N,) bool.
        confidence: (N,) float64 matcher confidence.
    """

    target_px: np.ndarray
    map_xy: np.ndarray
    residual_px: np.ndarray
    inlier: np.ndarray
    confidence: np.ndarray

    def to_dict(self) -> dict:
        return {k: getattr(self, k).tolist() for k in self.__dataclass_fields__}

    @classmethod
    def from_dict(cls, d: dict) -> "TiePoints":
        return cls(
            np.asarray(d["target_px"], dtype=np.float64).reshape(-1, 2),
            np.asarray(d["map_xy"], dtype=np.float64).reshape(-1, 2),
            np.asarray(d["residual_px"], dtype=np.float64),
            np.asarray(d["inlier"], dtype=bool),
            np.asarray(d["confidence"], dtype=np.float64),
        )


@dataclass
class Alignment:
    """The result of an alignment: everything needed to apply or judge it.

    Attributes:
        target, reference: input paths.
        matcher, model: what produced it.
        crs_wkt: the reference CRS, in which ``transform`` lands.
        transform: (3, 3) target raster pixel -> reference map coordinates.
        width, height: target size in pixels.
        metres_per_px: ground size of a target pixel.
        tie_points: the matches and their residuals.
        quality: measures and gate verdict.
        timings: seconds per stage.
        refinement: window counts of the sub-pixel refinement; empty if it did not run.
        model_comparison: held-out RMSE, CE90 and max (px) per model, on the inliers.
        tiles: full-resolution windows per outcome (matched, no texture, ...); empty if not tiled.
    """

    target: str
    reference: str
    matcher: str
    model: str
    crs_wkt: str
    transform: np.ndarray
    width: int
    height: int
    metres_per_px: float
    tie_points: TiePoints
    quality: Quality
    timings: dict[str, float] = field(default_factory=dict)
    refinement: dict[str, int] = field(default_factory=dict)
    model_comparison: dict[str, dict] = field(default_factory=dict)
    tiles: dict[str, int] = field(default_factory=dict)

    def predict(self, points: np.ndarray) -> np.ndarray:
        """Map (N, 2) target raster coordinates to reference map coordinates with the full model."""
        if self.model in WARP_MODELS:
            tp = self.tie_points
            return fit_model(self.model, tp.target_px[tp.inlier], tp.map_xy[tp.inlier]).apply(points)
        return geometry.apply(self.transform, points)

    @property
    def crs(self) -> CRS:
        return CRS.from_wkt(self.crs_wkt)

    @property
    def geotransform(self) -> np.ndarray:
        """(3, 3) affine part: the transform itself, or its best affine approximation."""
        if self.model == "homography":
            return geometry.best_affine(self.transform, self.width, self.height)
        return self.transform

    def to_dict(self) -> dict:
        return {
            "target": self.target,
            "reference": self.reference,
            "matcher": self.matcher,
            "model": self.model,
            "crs_wkt": self.crs_wkt,
            "transform": self.transform.tolist(),
            "geotransform_gdal": list(geometry.to_affine(self.geotransform).to_gdal()),
            "width": self.width,
            "height": self.height,
            "metres_per_px": self.metres_per_px,
            "quality": self.quality.to_dict(),
            "timings": self.timings,
            "refinement": self.refinement,
            "model_comparison": self.model_comparison,
            "tiles": self.tiles,
            "tie_points": self.tie_points.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: dict) -> "Alignment":
        return cls(
            target=d["target"],
            reference=d["reference"],
            matcher=d["matcher"],
            model=d["model"],
            crs_wkt=d["crs_wkt"],
            transform=np.asarray(d["transform"], dtype=np.float64),
            width=d["width"],
            height=d["height"],
            metres_per_px=d["metres_per_px"],
            tie_points=TiePoints.from_dict(d["tie_points"]),
            quality=Quality(**d["quality"]),
            timings=d.get("timings", {}),
            refinement=d.get("refinement", {}),
            model_comparison=d.get("model_comparison", {}),
            tiles=d.get("tiles", {}),
        )

    @classmethod
    def load(cls, path: str | Path) -> "Alignment":
        data = json.loads(Path(path).read_text())
        return cls.from_dict(data.get("alignment", data))


#: GDAL's block cache while georef reads and writes, unless GDAL_CACHEMAX is set: GDAL's
#: default (5 % of RAM) alone would exceed the memory a whole scene should take.
GDAL_CACHE_BYTES = 256 * 2**20


def bounded_gdal_cache() -> rasterio.Env:
    """A rasterio environment bounding GDAL's block cache (a user's GDAL_CACHEMAX wins)."""
    if os.environ.get("GDAL_CACHEMAX"):
        return rasterio.Env()
    return rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_BYTES)


def estimate_alignment(target: str | Path, reference: str | Path, options: AlignOptions | None = None,
                       progress: bool = False) -> Alignment:
    """Match a target against a reference and fit the target-pixel -> reference-map transform.

    Both may be rasters, Sentinel-2 ``.SAFE`` products (folder or zip) or
    comma-separated single-band files (see :mod:`georef.inputs`). A target larger
    than ``options.max_size`` is matched coarse to fine (see :mod:`georef.tiles`);
    one with no georeference, or with ``options.global_search``, is first located
    anywhere in the reference (see :mod:`georef.search`).

    Raises:
        RasterReadError, MissingGeoreference, BandError, EmptyDataError,
        NoOverlapError: bad input, named in the message.
        MatchingError: too few matches to fit the model.
    """
    options = options or AlignOptions()
    with bounded_gdal_cache(), inputs.ResolvedInput(target, options.product_bands) as tgt, \
            inputs.ResolvedInput(reference, options.product_bands) as ref:
        alignment = _estimate(tgt, ref, options, progress)
    alignment.target, alignment.reference = str(target), str(reference)
    return alignment


def _estimate(target: str, reference: str, options: AlignOptions, progress: bool) -> Alignment:
    timings: dict[str, float] = {}
    start = time.perf_counter()
    masks = tuple(raster.ExclusionMask.parse(m) if m else None for m in (options.mask_target, options.mask_ref))
    with raster.open_raster(reference) as ref_ds, raster.open_raster(target) as tgt_ds:
        if ref_ds.crs is None:
            raise MissingGeoreference("reference has no CRS", reference)
        if ref_ds.transform.is_identity:
            raise MissingGeoreference("reference has no geotransform", reference)
        ref_bands = raster.resolve_bands(ref_ds, options.bands)
        tgt_bands = raster.resolve_bands(tgt_ds, options.bands)
        if options.global_search or not raster.is_georeferenced(tgt_ds):
            log.info("searching the whole reference for the target")
            known = None
            if raster.is_georeferenced(tgt_ds) and tgt_ds.crs == ref_ds.crs:  # wrong place, right pixel size
                known = float(np.sqrt(abs(tgt_ds.transform.determinant)))
            tgt_geo, uncertainty_m = search.global_search(tgt_ds, ref_ds, tgt_bands, ref_bands, options,
                                                          options.approx_center, known, masks)
            options = replace(options, max_shift_m=uncertainty_m)
            timings["search"] = time.perf_counter() - start
        else:
            assume = CRS.from_user_input(options.target_crs) if options.target_crs else ref_ds.crs
            tgt_geo = raster.georeference(tgt_ds, assume_crs=assume)

        target_img = raster.read_target(tgt_ds, tgt_bands, options.max_size, masks[0])
        footprint = raster.footprint_in(tgt_geo, tgt_ds.width, tgt_ds.height, ref_ds.crs)
        # The chip's pixel is the target's working pixel expressed in reference units.
        working_to_map = footprint @ target_img.to_world
        pixel_size = float(np.sqrt(abs(np.linalg.det(working_to_map[:2, :2]))))
        tiled = options.tiles.size > 0 and max(tgt_ds.width, tgt_ds.height) > options.max_size
        chip = raster.read_reference_chip(
            ref_ds, ref_bands, footprint, tgt_ds.width, tgt_ds.height, options.max_shift_m, pixel_size,
            mask=masks[1])
        centre = geometry.apply(footprint, [[tgt_ds.width / 2, tgt_ds.height / 2]])[0]
        frame = _Frame(footprint, tgt_ds.width, tgt_ds.height, ref_ds.crs.to_wkt(),
                       raster.metres_per_unit(ref_ds.crs, raster.latitude(ref_ds.crs, centre)))
    timings["read"] = time.perf_counter() - start - timings.get("search", 0.0)
    log.info("read target %dx%d and reference chip %dx%d", *target_img.shape[::-1], *chip.shape[::-1])

    matcher = create_matcher(options.matcher, options.weights)
    # Warp models start from a robust affine; the model itself is fitted to its inliers below.
    base = replace(options, model="affine") if options.model in WARP_MODELS else options
    candidates = [rotated(target_img, k) for k in (0, 1, 2, 3)] if options.rotation_search else [target_img]
    best, failure = None, None
    for k, candidate in enumerate(candidates):
        start = time.perf_counter()
        matches = matcher.match(candidate.pixels, chip.pixels, candidate.valid, chip.valid)
        timings["match"] = timings.get("match", 0.0) + time.perf_counter() - start
        log.info("%s: %d matches (%d / %d keypoints)", options.matcher, len(matches), matches.keypoints0,
                 matches.keypoints1)
        start = time.perf_counter()
        try:
            result = _fit_with_guided_pass(matcher, matches, candidate, chip, base)
        except MatchingError as exc:
            failure = exc
            continue
        finally:
            timings["fit"] = timings.get("fit", 0.0) + time.perf_counter() - start
        if options.rotation_search:
            log.info("rotation %d deg: %d unguided inliers", 90 * k, result[2])
        if best is None or result[2] > best[0][2]:
            best = (result, candidate)
    if best is None:
        raise MatchingError(f"no alignment found: {failure.message}", target)
    (fit, matches, support), target_img = best
    src = geometry.index_to_raster(matches.points0)
    dst = geometry.index_to_raster(matches.points1)

    refinement = {}
    if options.refine:
        start = time.perf_counter()
        refined = refine(target_img.pixels, target_img.valid, chip.pixels, chip.valid, fit.matrix, base.model)
        if refined is not None:
            fit = fit.with_matrix(refined.matrix, src, dst, options.threshold_px, refined.model)
            refinement = {"windows": len(refined.inliers), "inliers": int(refined.inliers.sum())}
        timings["refine"] = time.perf_counter() - start
    if not tiled:
        return _assemble(options, frame, fit, support, src, dst, matches.confidence, target_img.to_world,
                         chip.to_world, pixel_size, timings, refinement)

    start = time.perf_counter()
    coarse_to_map, _ = _pixel_to_map(options, fit, src, dst, target_img.to_world, chip.to_world)
    decimation = float(np.sqrt(abs(np.linalg.det(target_img.to_world[:2, :2]))))
    # Windows share the coarse reads' stretches: the whole scene's, not each window's own.
    results = tiles.match_windows(target, reference, coarse_to_map, target_img, chip.stretch, options,
                                  margin_px=max(32.0, 4 * decimation), tgt_bands=tgt_bands, ref_bands=ref_bands,
                                  masks=masks, progress=progress)
    timings["windows"] = time.perf_counter() - start
    counts = {status: sum(r.status == status for r in results) for status in TILE_STATUSES}
    used = [r for r in results if r.status == "matched"]
    if not used:
        log.warning("no window matched at full resolution; keeping the coarse alignment")
        coarse = _assemble(options, frame, fit, support, src, dst, matches.confidence, target_img.to_world,
                           chip.to_world, pixel_size, timings, refinement)
        coarse.tiles = counts
        return coarse
    target_px = np.concatenate([r.target_px for r in used])
    map_xy = np.concatenate([r.map_xy for r in used])
    confidence = np.concatenate([r.confidence for r in used])
    # One pooled fit in a frame whose pixel is a full-resolution target pixel on the reference's axes.
    full_px = float(np.sqrt(abs(np.linalg.det(coarse_to_map[:2, :2]))))
    dst_to_world = geometry.translation(map_xy[:, 0].min(), map_xy[:, 1].max()) @ geometry.scaling(full_px, -full_px)
    dst = geometry.apply(np.linalg.inv(dst_to_world), map_xy)
    start = time.perf_counter()
    pooled = fit_transform(target_px, dst, base.model, options.threshold_px, options.seed)
    timings["fit"] += time.perf_counter() - start
    fine = _assemble(options, frame, pooled, int(pooled.inliers.sum()), target_px, dst, confidence, np.eye(3),
                     dst_to_world, full_px, timings, refinement)
    fine.tiles = counts
    return fine


#: Outcomes of a full-resolution window, counted in the report.
TILE_STATUSES = ("matched", "no texture", "no match", "outside reference")


@dataclass
class _Frame:
    """What the final assembly needs to know of the target and the reference."""

    footprint: np.ndarray  # (3, 3) target pixel -> reference map, as the target claims
    width: int
    height: int
    crs_wkt: str
    metres_per_unit: float


def _pixel_to_map(options: AlignOptions, fit, src: np.ndarray, dst: np.ndarray, to_target: np.ndarray,
                  dst_to_world: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(3, 3) target pixel -> reference map transform of a fit, and the (N,) inliers it rests on.

    A warp model keeps the inliers of its own robust fit; its geotransform is their best affine.
    """
    if options.model in WARP_MODELS:
        _, inliers = fit_model_robust(options.model, src, dst, fit.matrix, options.threshold_px)
        return geometry.fit_affine_lstsq(geometry.apply(to_target, src)[inliers],
                                         geometry.apply(dst_to_world, dst)[inliers]), inliers
    transform = dst_to_world @ fit.matrix @ np.linalg.inv(to_target)
    return transform / transform[2, 2], fit.inliers


def _assemble(options: AlignOptions, frame: _Frame, fit, support: int, src: np.ndarray, dst: np.ndarray,
              confidence: np.ndarray, to_target: np.ndarray, dst_to_world: np.ndarray, pixel_size: float,
              timings: dict, refinement: dict) -> Alignment:
    """Turn a fit between working images into an :class:`Alignment` with residuals and quality.

    Args:
        fit: the fit of ``src`` -> ``dst`` (working target raster -> working reference raster).
        src, dst: (N, 2) matched points; ``to_target`` maps src to full-resolution target pixels,
            ``dst_to_world`` maps dst to reference map coordinates, whose pixel is ``pixel_size`` units.
    """
    metres_per_unit = frame.metres_per_unit
    working_px = float(np.sqrt(abs(np.linalg.det(to_target[:2, :2]))))  # target pixels per working pixel
    metres_per_px = pixel_size * metres_per_unit / working_px
    target_px = geometry.apply(to_target, src)
    map_xy = geometry.apply(dst_to_world, dst)
    transform, inliers = _pixel_to_map(options, fit, src, dst, to_target, dst_to_world)
    if options.model in WARP_MODELS:
        # The pixel -> map model is refitted on the inliers: same points, map units.
        warp = fit_model(options.model, target_px[inliers], map_xy[inliers])
        residual_px = np.linalg.norm(warp.apply(target_px) - map_xy, axis=1) * metres_per_unit / metres_per_px
        if options.model == "tps":  # it interpolates its own points: only held-out residuals say anything
            residual_px[inliers] = held_out_errors("tps", target_px[inliers], map_xy[inliers]) * (
                metres_per_unit / metres_per_px)
    else:
        residual_px = fit.residuals * working_px
    width, height, footprint = frame.width, frame.height, frame.footprint
    corners = geometry.corners(width, height)
    fitted, claimed = geometry.apply(transform, corners), geometry.apply(footprint, corners)
    if options.rotation_search:  # a turned target's corners land on other corners of its footprint
        moved = np.linalg.norm(fitted[:, None] - claimed[None], axis=2).min(axis=1)
    else:
        moved = np.linalg.norm(fitted - claimed, axis=1)
    shift_m = float(moved.max()) * metres_per_unit
    scale_change = float(np.sqrt(abs(np.linalg.det(transform[:2, :2]) / np.linalg.det(footprint[:2, :2])))) - 1
    quality = assess(
        residual_px, inliers, support, target_px, width, height, metres_per_px,
        shift_m, scale_change, options.max_shift_m, options.gate,
    )
    # Compared in working pixel -> reference-grid pixel space, where shift and similarity make sense.
    comparison = compare_models(_subset(src[inliers]), _subset(dst[inliers]), COMPARED_MODELS, 1 / working_px)
    tie_points = TiePoints(target_px=target_px, map_xy=map_xy, residual_px=residual_px, inlier=inliers,
                           confidence=confidence)
    return Alignment(
        target="",
        reference="",
        matcher=options.matcher,
        model=options.model if options.model in WARP_MODELS else fit.model,  # auto: the one chosen
        crs_wkt=frame.crs_wkt,
        transform=transform,
        width=width,
        height=height,
        metres_per_px=metres_per_px,
        tie_points=tie_points,
        quality=quality,
        timings=timings,
        refinement=refinement,
        model_comparison=comparison,
    )


#: Models compared by held-out residuals in every report.
COMPARED_MODELS = ("shift", "similarity", "affine", "homography", "poly2", "poly3", "tps")


def _subset(points: np.ndarray, limit: int = 800) -> np.ndarray:
    """At most ``limit`` points, the same ones for equal-length inputs: keeps the TPS comparison cheap."""
    if len(points) <= limit:
        return points
    return points[np.random.default_rng(0).choice(len(points), limit, replace=False)]


def rotated(image: raster.MatchImage, quarter_turns: int) -> raster.MatchImage:
    """The image turned counter-clockwise by ``quarter_turns`` x 90 degrees, ``to_world`` updated to match."""
    to_world = image.to_world
    pixels, valid = image.pixels, image.valid
    for _ in range(quarter_turns % 4):
        w = pixels.shape[1]
        # np.rot90: new[r, c] = old[c, w - 1 - r], so new raster (x, y) is old (w - y, x)
        to_world = to_world @ np.array([[0.0, -1.0, w], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
        pixels, valid = np.rot90(pixels), np.rot90(valid)
    return raster.MatchImage(np.ascontiguousarray(pixels), np.ascontiguousarray(valid), to_world)


def _fit_with_guided_pass(matcher, matches, target_img, chip, options: AlignOptions):
    """Fit the matches; then, unless disabled, match again guided by the fit and refit.

    Returns:
        The fit, the matches it used, and the inlier count of the unguided pass.
    """
    fit = fit_transform(
        geometry.index_to_raster(matches.points0), geometry.index_to_raster(matches.points1),
        options.model, options.threshold_px, options.seed,
    )
    support = int(fit.inliers.sum())
    if options.guided_radius_px <= 0:
        return fit, matches, support
    # Each keypoint may now match only near where the first fit puts it, which keeps
    # the correct matches that global mutual-NN loses to look-alikes elsewhere.
    to_index = geometry.translation(-geometry.PIXEL_CENTRE, -geometry.PIXEL_CENTRE)
    prior = to_index @ fit.matrix @ np.linalg.inv(to_index)
    guided = matcher.match(
        target_img.pixels, chip.pixels, target_img.valid, chip.valid, prior=prior, radius=options.guided_radius_px
    )
    log.info("guided pass: %d matches", len(guided))
    fit = fit_transform(
        geometry.index_to_raster(guided.points0), geometry.index_to_raster(guided.points1),
        options.model, options.threshold_px, options.seed,
    )
    return fit, guided, support


def align_file(
    target: str | Path,
    reference: str | Path,
    output: str | Path | None,
    options: AlignOptions | None = None,
    *,
    gcps: int | None = None,
    report: str | Path | None = None,
    overwrite: bool = False,
    force: bool = False,
    warp: bool = False,
    resampling: str = "cubic",
    target_res: float | None = None,
    report_figures: bool = True,
    progress: bool = False,
) -> Alignment:
    """Estimate an alignment, apply the quality gate, write the output and the report.

    Args:
        target, reference: input rasters.
        output: GeoTIFF to write; None to only estimate (and report).
        options: alignment settings.
        gcps: embed this many tie points as GCPs instead of a geotransform.
        report: JSON report to write (also when the gate fails).
        overwrite: replace an existing output.
        force: write the output even if the gate fails (the report says so).
        warp: write a resampled Cloud-Optimized GeoTIFF on the reference grid
            instead of the target's pixels with a new georeference.
        resampling: GDAL resampling method of the warp.
        target_res: pixel size of the warped output; default the reference's.
        report_figures: write the report's plots and Markdown/HTML summary too.
        progress: show progress bars of the long stages.

    Raises:
        QualityGateFailed: the result failed the gate and ``force`` is off; the
            report is written, the output is not.
    """
    from rasterio.enums import Resampling

    from georef.report import write_report
    from georef.write import refuse_existing, write_aligned, write_warped

    options = options or AlignOptions()
    refuse_existing(output, report, overwrite=overwrite)
    alignment = estimate_alignment(target, reference, options, progress=progress)
    written = False
    if output is not None and (alignment.quality.passed or force):
        start = time.perf_counter()
        with bounded_gdal_cache(), inputs.ResolvedInput(target, options.product_bands) as readable:
            if warp:
                write_warped(readable, output, alignment, Resampling[resampling], target_res)
            else:
                write_aligned(readable, output, alignment, gcps=gcps, progress=progress)
        alignment.timings["write"] = time.perf_counter() - start
        written = True
    if report is not None:
        write_report(report, alignment, output=output if written else None, figures=report_figures)
    if not alignment.quality.passed and not force:
        error = QualityGateFailed(
            "alignment failed the quality gate (" + "; ".join(alignment.quality.reasons) + "); nothing written",
            target,
        )
        error.alignment = alignment
        raise error
    return alignment
