"""Every setting of an alignment and its outputs, with its default, in one place.

The command line and the QGIS plugin read their defaults from here. This module
imports nothing heavy: ``georef --help`` reads it.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field, replace
from pathlib import Path

from georef.errors import InvalidOption

#: Resampling methods of a warped output.
RESAMPLING = ("nearest", "bilinear", "cubic", "lanczos")


def _check(condition: bool, param: str, text: str) -> None:
    if not condition:
        raise InvalidOption(f"{{param:{param}}} {text}")


def crs_problem(value: str) -> str | None:
    """Why PROJ cannot take ``value`` as a CRS; None where it can."""
    import rasterio
    from rasterio.crs import CRS
    from rasterio.errors import CRSError

    try:
        with rasterio.Env():  # GDAL's messages go to logging, not straight to stderr
            CRS.from_user_input(value)
    except CRSError:
        return f"{value!r} is not a CRS PROJ knows (e.g. EPSG:32632)"
    return None


def _finite(value: float | None, param: str, low: float = -math.inf, high: float = math.inf,
            low_open: bool = False) -> None:
    if value is None:
        return
    _check(isinstance(value, (int, float)) and math.isfinite(value), param, f"must be a finite number, not {value!r}")
    above = value > low if low_open else value >= low
    _check(above and value <= high, param, f"must be {'>' if low_open else '>='} {low:g} and <= {high:g}, "
                                           f"not {value:g}")


@dataclass(frozen=True)
class QualityGate:
    """Thresholds a result must meet to be written.

    The gate asks three independent things of a fit: that its unguided keypoint
    inliers are too many to be chance (their number of false alarms, see
    :mod:`georef.significance`, which scales with the matches, the threshold and
    the area searched), that the refinement's correlation windows confirm it
    (they agree with it, again beyond chance), and that its estimated error at
    the target's corners (see :mod:`georef.accuracy`, which grows where the tie
    points cover only part of the image) is small enough to be worth writing.

    Attributes:
        min_inliers: fewest inliers of the unguided matching pass (a floor; the significance
            test does the work). The guided pass finds matches near any prior, right or
            wrong, so only unguided inliers count as independent support.
        max_log_nfa: largest log10 of the number of false alarms of the unguided inliers, and
            of the refinement windows that agree with the fit.
        max_ce90_px: largest estimated error at the corners (CE90), target pixels.
        min_span: smallest share of the target's width and of its height that the measurements the
            fit rests on must span (each window counted with its footprint). A fit from a narrow
            strip puts the far corners several strips away, and the estimate's few resampled
            blocks do not see what that extrapolation costs.
        max_rmse_px: largest RMSE of the inlier tie points' residuals, target pixels, or pixels of the
            reference where it is the coarser input.
        max_scale_change: largest relative change of pixel size against the
            target's own georeference (0.2 = 20 %).
        max_repeat: largest correlation of the target's content with itself shifted within reach of the
            search (see :mod:`georef.repeats`): above it, a copy of the content elsewhere fits as well.
        confirm: require the refinement's windows to confirm the fit (where the refinement is on).
    """

    min_inliers: int = 6
    max_log_nfa: float = 0.0
    max_ce90_px: float = 2.0
    min_span: float = 0.2
    max_rmse_px: float = 1.5
    max_scale_change: float = 0.2
    max_repeat: float = 0.6
    confirm: bool = True

    def validate(self) -> None:
        _check(self.min_inliers >= 1, "min_inliers", f"must be >= 1, not {self.min_inliers}")
        _finite(self.max_log_nfa, "max_log_nfa")
        _finite(self.max_ce90_px, "max_ce90_px", 0, low_open=True)
        _finite(self.min_span, "min_span", 0, 1)
        _finite(self.max_rmse_px, "max_rmse_px", 0)
        _finite(self.max_scale_change, "max_scale_change", 0)
        _finite(self.max_repeat, "max_repeat", 0, 1)


@dataclass(frozen=True)
class TileOptions:
    """How a large target is matched window by window.

    Attributes:
        size: window side, full-resolution target pixels; 0 matches the decimated scene only.
        overlap: overlap of neighbouring windows, pixels.
        max_windows: most windows matched; a larger grid is thinned evenly (enough
            tie points for any model, at a fraction of the decoding).
        first_windows, more_windows: windows of the first round, spread over the target, and of
            each round after it.
        target_fit_ce90_px: windows are added a round at a time until the pooled fit passes the
            gate and the statistical term of its estimated CE90 (see :mod:`georef.accuracy`; the
            term more windows reduce) is at most this, full-resolution target pixels; 0 matches
            every window.
        jobs: windows matched at once (threads).
        points_per_window: most tie points a window contributes (the strongest).
        min_valid: least share of valid pixels for a window to be tried.
        min_contrast: least standard deviation of a normalised window to be tried.
    """

    size: int = 512
    overlap: int = 64
    max_windows: int = 25
    first_windows: int = 9
    more_windows: int = 8
    target_fit_ce90_px: float = 0.2
    jobs: int = 1
    points_per_window: int = 200
    min_valid: float = 0.2
    min_contrast: float = 0.02

    def validate(self) -> None:
        _check(self.size == 0 or self.size >= 64, "tile_size", f"must be 0 or >= 64, not {self.size}")
        _check(self.overlap >= 0 and (self.size == 0 or self.overlap < self.size), "tile_overlap",
               f"must be >= 0 and smaller than the tile size, not {self.overlap}")
        _check(self.max_windows >= 1, "max_windows", f"must be >= 1, not {self.max_windows}")
        _check(self.jobs >= 1, "jobs", f"must be >= 1, not {self.jobs}")
        _check(self.first_windows >= 1 and self.more_windows >= 1, "first_windows",
               f"rounds must hold >= 1 window, not {self.first_windows} and {self.more_windows}")
        _check(self.target_fit_ce90_px >= 0, "target_fit_ce90_px", f"must be >= 0, not {self.target_fit_ce90_px}")


@dataclass(frozen=True)
class RefineOptions:
    """Sub-pixel refinement by local phase correlation (see :mod:`georef.refine`).

    Attributes:
        enabled: refine at all.
        window: correlation window side, pixels.
        iterations: most resample-and-measure rounds.
        threshold_px: inlier threshold of the window fit, pixels.
        min_windows: fewest textured windows; below it the fit stays unrefined.
        converged_px: stop once a round moves the image corners less than this (or no less than the round before).
        lowpass_sigma: width of the spectral weight of the correlation, cycles per pixel.
        max_offset_px: largest offset a window may measure, pixels.

    The window is in pixels of the finer of target and reference, the other sizes in pixels of the
    coarser; :meth:`at_scale` expresses them in pixels of the image the refinement runs on.
    """

    enabled: bool = True
    window: int = 64
    iterations: int = 5
    threshold_px: float = 1.0
    min_windows: int = 12
    # About the window fit's standard error at the corners (its CE90: 0.04-0.17 px on the shift cases): a
    # smaller move is the windows' noise, not worth another round.
    converged_px: float = 0.05
    lowpass_sigma: float = 0.1
    max_offset_px: float = 3.0

    def at_scale(self, scale: float, image_side: int, window_scale: float) -> "RefineOptions":
        """The options for an image ``image_side`` px small whose pixel is ``1 / scale`` of the coarser
        input's and ``1 / window_scale`` of the finer input's.

        Windows keep their ground size in pixels of the finer input: a 20-60 m target against a 10 m
        reference is refined enlarged, with as many windows as a 10 m pair, not with windows of 64 of
        its own pixels, too few to confirm a fit. They fit eight times into the image's short side
        (15 windows across, as a 512 px image holds), so that a small image still holds enough
        windows to be judged. The spectral weight keeps its ground frequency and the thresholds their
        ground distance in pixels of the coarser input: a coarse input holds no finer detail, and its
        pixels are the unit of the result's accuracy.
        """
        window = min(self.window * window_scale, image_side / 8)
        window = max(16, 2 * int(window // 2))
        return replace(self, window=window, threshold_px=self.threshold_px * scale,
                       converged_px=self.converged_px * scale, lowpass_sigma=self.lowpass_sigma / scale,
                       max_offset_px=self.max_offset_px * scale)

    def ground_window(self, finer_per_px: float) -> int:
        """The window's side in pixels of an image with ``finer_per_px`` pixels of the finer input per pixel,
        at its ground size (at least 16, even): what the accuracy estimate measures the content's
        disagreement in where :meth:`at_scale` made the windows smaller to fit a small image."""
        return max(16, 2 * int(self.window * finer_per_px // 2))

    def validate(self) -> None:
        _check(self.window >= 16 and self.window % 2 == 0, "refine_window", f"must be even and >= 16, not {self.window}")
        _finite(self.lowpass_sigma, "lowpass_sigma", 0, 0.5, low_open=True)
        _finite(self.threshold_px, "refine_threshold", 0, low_open=True)


@dataclass(frozen=True)
class AlignOptions:
    """Settings of one alignment.

    Attributes:
        matcher: matcher name (see :data:`georef.matchers.MATCHERS`).
        model: transform model: ``auto`` (a similarity unless the tie points demand an
            affine, see :func:`georef.fitting.select_model`) or a name of
            :data:`georef.transforms.MODELS`; polynomials and the thin-plate
            spline are fitted to the pooled inlier tie points and carried by GCPs.
        bands: 1-based bands to read from both rasters; default true colour.
        product_bands: bands of a Sentinel-2 product: ``"TCI"`` or e.g. ``"B04,B03,B02"``.
        max_shift_m: search margin around the target's footprint, in metres; None searches 600 m
            around it first, then, where nothing convincing is found, up to 10 km (see
            :func:`georef.pipeline.locate`).
        threshold_px: inlier threshold of the robust fit, in working pixels.
        guided_radius_px: search radius of the guided second matching pass; 0 skips it.
        refine: the sub-pixel refinement.
        rotation_search: also try the target turned by 90, 180 and 270 degrees; keep
            the turn with the most unguided inliers.
        max_size: long side, in pixels, above which the target is matched decimated.
        weights: weight file for the matcher; default from the registry.
        target_crs: CRS to assume for a target that has a geotransform but no CRS, and to give a target with
            no georeference (its output's CRS; default the reference's).
        reference_crs: the same for the reference.
        gate: quality thresholds.
        seed: random seed of the robust fit.
        tiles: coarse-to-fine window matching of targets larger than ``max_size``.
        mask_target, mask_ref: exclusion masks of the target's or reference's extent, ``PATH`` (non-zero
            excluded), ``PATH:V1,V2`` (these values) or ``PATH:bits=B1,B2`` (any of these flag bits set).
        global_search: ignore the target's georeference and search the whole reference
            (automatic for a target without one).
        approx_center: (lon, lat) around which the global search looks.
        device: torch device of the matcher and of the refinement's FFTs: ``auto`` (CUDA where torch
            sees a GPU, else the CPU), ``cpu``, ``cuda``, ``cuda:1``...
        correlation_first: try one correlation of the whole target before the feature matcher
            (see :func:`georef.pipeline.correlate_coarse`); the matcher runs where it is not convincing.
    """

    matcher: str = "xfeat"
    model: str = "auto"
    bands: tuple[int, ...] | None = None
    product_bands: str = "TCI"
    max_shift_m: float | None = None
    threshold_px: float = 2.0
    guided_radius_px: float = 4.0
    refine: RefineOptions = field(default_factory=RefineOptions)
    rotation_search: bool = False
    max_size: int = 2048
    weights: str | None = None
    target_crs: str | None = None
    reference_crs: str | None = None
    gate: QualityGate = field(default_factory=QualityGate)
    seed: int = 0
    tiles: TileOptions = field(default_factory=TileOptions)
    mask_target: str | None = None
    mask_ref: str | None = None
    global_search: bool = False
    approx_center: tuple[float, float] | None = None
    device: str = "auto"
    correlation_first: bool = True

    def validate(self) -> None:
        """Raise :class:`~georef.errors.InvalidOption` naming the first setting out of range."""
        from georef.matchers import MATCHERS, REGISTRY
        from georef.transforms import MODEL_NAMES

        _check(self.matcher in MATCHERS, "matcher", f"{self.matcher!r} is not one of {', '.join(MATCHERS)}")
        _check(self.weights is None or REGISTRY[self.matcher].weights != "none", "weights",
               f"does not apply to {self.matcher}, which uses no learned weights")
        _check(self.model in MODEL_NAMES, "model", f"{self.model!r} is not one of {', '.join(MODEL_NAMES)}")
        _finite(self.max_shift_m, "max_shift_m", 0)
        _finite(self.threshold_px, "threshold_px", 0, low_open=True)
        _finite(self.guided_radius_px, "guided_radius_px", 0)
        _check(self.max_size >= 64, "max_size", f"must be >= 64, not {self.max_size}")
        _check(not self.bands or all(b >= 1 for b in self.bands), "bands", "are numbered from 1")
        _check(isinstance(self.seed, numbers.Integral) and self.seed >= 0, "seed", f"must be an integer >= 0, not {self.seed!r}")
        for name in ("target_crs", "reference_crs"):
            value = getattr(self, name)
            problem = None if value is None else crs_problem(value)
            _check(problem is None, name, problem or "")
        if self.approx_center is not None:
            lon, lat = self.approx_center
            _finite(lon, "approx_center", -180, 180)
            _finite(lat, "approx_center", -90, 90)
        self.gate.validate()
        self.tiles.validate()
        self.refine.validate()


#: Largest warped output, pixels per band, unless the caller raises it.
MAX_OUTPUT_PIXELS = 2_000_000_000


@dataclass(frozen=True)
class OutputOptions:
    """What an alignment (or a fit of GCPs) writes.

    Attributes:
        output: raster to write; None writes none (a dry run: the report only).
        report: JSON report to write (also when the gate fails); beside it, unless
            ``report_figures`` is off, ``.md`` and ``.html`` summaries and two plots.
        gcps: embed this many tie points as GCPs instead of a geotransform.
        warp: write a resampled Cloud-Optimized GeoTIFF on the reference grid
            instead of the target's pixels with a new georeference.
        resampling: resampling method of the warp (:data:`RESAMPLING`).
        target_res: pixel size of the warped output; default the reference's.
        max_output_pixels: largest warped output, pixels per band.
        overwrite: replace existing outputs.
        force: write the output even if the gate fails (the report says so).
        report_figures: write the report's plots and summaries too.
        sidecar: copy no pixel: ``output`` becomes a hard link to the target with the new
            georeference in its GDAL ``.aux.xml`` (see :mod:`georef.copyfree`). An ``output``
            ending in ``.vrt`` copies no pixel either: a VRT over the target.
        in_place: with ``sidecar``, write the ``.aux.xml`` beside the target itself (no ``output``).
    """

    output: str | Path | None = None
    report: str | Path | None = None
    gcps: int | None = None
    warp: bool = False
    resampling: str = "cubic"
    target_res: float | None = None
    max_output_pixels: int = MAX_OUTPUT_PIXELS
    overwrite: bool = False
    force: bool = False
    report_figures: bool = True
    sidecar: bool = False
    in_place: bool = False

    @property
    def kind(self) -> str | None:
        """What the raster output is: ``"sidecar"``, ``"vrt"``, ``"warp"``, ``"geotiff"``, or None (none)."""
        if self.sidecar:
            return "sidecar"
        if self.output is None:
            return None
        if str(self.output).lower().endswith(".vrt"):
            return "vrt"
        return "warp" if self.warp else "geotiff"

    def validate(self) -> None:
        _check(not self.in_place or self.sidecar, "in_place", "applies to {param:sidecar} only")
        _check(not (self.in_place and self.output is not None), "in_place",
               "writes beside the target: give no {param:output}")
        _check(not self.sidecar or self.in_place or self.output is not None, "sidecar",
               "needs {param:output} (a second name for the target) or {param:in_place}")
        _check(not (self.sidecar and (self.warp or self.gcps)), "sidecar",
               "carries a geotransform only: for {param:warp} or {param:gcps} write a GeoTIFF or a VRT")
        _check(not (self.kind == "vrt" and self.warp), "warp",
               "writes a Cloud-Optimized GeoTIFF: a .vrt output references the target's pixels unchanged")
        _check(self.gcps is None or self.gcps >= 3, "gcps", f"must be >= 3, not {self.gcps}")
        _check(self.resampling in RESAMPLING, "resampling", f"{self.resampling!r} is not one of {', '.join(RESAMPLING)}")
        _finite(self.target_res, "target_res", 0, low_open=True)
        _check(self.max_output_pixels >= 1, "max_output_pixels", "must be >= 1")
        _check(self.target_res is None or self.warp, "target_res", "applies to a warped output only ({param:warp})")
