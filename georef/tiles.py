"""Coarse-to-fine matching of whole scenes: full-resolution windows read through a coarse transform.

A 10980 x 10980 Sentinel-2 tile does not go through a matcher in one piece. The
coarse alignment (both scenes decimated, see :mod:`georef.pipeline`) places the
target to a few pixels; then each window of a grid over the target is read at
full resolution, the reference window is read where the coarse transform puts
it, the two are matched and refined, and the tie points are mapped back to
full-scene coordinates. Windows without usable texture (snow fields, water,
cloud) are skipped and counted. Only windows are ever read.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import rasterio
from rasterio.windows import Window

from georef import geometry, raster
from georef.errors import EmptyDataError, MatchingError, NoOverlapError
from georef.matchers import create_matcher
from georef.matching import FitSettings, fit_with_guided_pass, upright
from georef.options import AlignOptions, RefineOptions, TileOptions
from georef.refine import Refinement, refine

log = logging.getLogger(__name__)


def window_grid(width: int, height: int, size: int, overlap: int, max_windows: int | None = None) -> list[Window]:
    """Windows of ``size`` px overlapping by ``overlap``, covering a ``width`` x ``height`` raster.

    Windows are clipped to the raster; with ``max_windows`` the grid keeps evenly
    spread rows and columns of windows so that at most that many remain.
    """
    step = max(1, size - overlap)

    def starts(extent):
        if extent <= size:
            return [0]
        n = int(np.ceil((extent - size) / step)) + 1
        return sorted({min(i * step, extent - size) for i in range(n)})

    cols, rows = starts(width), starts(height)
    if max_windows and len(cols) * len(rows) > max_windows:
        per_axis = max(1, int(np.sqrt(max_windows)))
        cols, rows = _spread(cols, per_axis), _spread(rows, per_axis)
    return [Window(c, r, min(size, width - c), min(size, height - r)) for r in rows for c in cols]


def _spread(values: list[int], n: int) -> list[int]:
    """At most ``n`` of ``values``, evenly spread from the first to the last."""
    picks = np.unique(np.linspace(0, len(values) - 1, min(n, len(values))).round().astype(int))
    return [values[i] for i in picks]


def block_aligned_grid(ds, tiles: TileOptions) -> list[Window] | None:
    """Windows centred in the blocks of a tiled raster (JPEG2000 tiles), when a thinned grid is asked.

    A window across block edges decodes up to four blocks; one inside a block decodes
    one, and so does the reference window, which the coarse transform puts a few
    pixels away. None where the raster is not tiled in blocks at least a window large.
    """
    bh, bw = ds.block_shapes[0]
    if bw >= ds.width or bh < tiles.size or bw < tiles.size:
        return None
    # whole blocks only: a clipped edge block may be too small to centre a window in
    cols = list(range(0, ds.width - bw + 1, bw))
    rows = list(range(0, ds.height - bh + 1, bh))
    if tiles.max_windows and len(cols) * len(rows) > tiles.max_windows:
        per_axis = max(1, int(np.sqrt(tiles.max_windows)))
        cols, rows = (_spread(v, per_axis) for v in (cols, rows))
    off_x, off_y = (bw - tiles.size) // 2, (bh - tiles.size) // 2
    out = [Window(c + off_x, r + off_y, tiles.size, tiles.size) for r in rows for c in cols]
    return out or None


def target_grid(ds, tiles: TileOptions) -> list[Window]:
    """The windows matched over a target: inside its blocks where it is tiled so, else an even grid."""
    return block_aligned_grid(ds, tiles) or window_grid(ds.width, ds.height, tiles.size, tiles.overlap,
                                                        tiles.max_windows)


def window_rounds(windows: list[Window], first: int, then: int) -> list[list[Window]]:
    """The windows in rounds: ``first`` spread over the whole target, then ``then`` at a time.

    Each round fills the largest gaps the earlier ones left (farthest-point order from a corner),
    so any prefix of the rounds covers the target evenly.
    """
    centres = np.array([[w.col_off + w.width / 2, w.row_off + w.height / 2] for w in windows], float)
    if not len(windows):
        return []
    order = [windows[i] for i in geometry.select_spread(centres, len(windows))]
    rounds = [order[:first]]
    rounds += [order[i:i + then] for i in range(first, len(order), then)]
    return rounds


#: Outcomes of a full-resolution window, counted in the report: refined straight from the coarse fit,
#: matched by the feature matcher (then refined), skipped, or not needed (the pooled fit was precise
#: enough without it).
TILE_STATUSES = ("refined", "matched", "no texture", "no match", "outside reference", "not needed")
#: Outcomes whose tie points the pooled fit uses.
USED = ("refined", "matched")


@dataclass
class WindowResult:
    """Tie points from one window.

    Attributes:
        window: the target window.
        status: 'refined' (from the coarse fit), 'matched' (by the matcher), or why it was skipped
            ('no texture', 'outside reference', 'no match').
        target_px: (K, 2) full-resolution target raster coordinates.
        map_xy: (K, 2) reference map coordinates.
        confidence: (K,) strength of each tie point.
        tried, agreeing: textured refinement windows correlated, and those agreeing with the window's fit.
        windows_target_px, windows_map_xy: (M, 2) every correlation window of the window's refinement,
            agreeing with its fit or not, as ``target_px`` and ``map_xy``: where the accuracy estimate
            measures the two images' disagreement (empty where no refinement ran).
    """

    window: Window
    status: str
    target_px: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    map_xy: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    confidence: np.ndarray = field(default_factory=lambda: np.zeros(0))
    tried: int = 0
    agreeing: int = 0
    windows_target_px: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    windows_map_xy: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))


class _Datasets:
    """One open target and reference per thread: GDAL handles are not shared between threads."""

    def __init__(self, target: str, reference: str) -> None:
        self.paths = (target, reference)
        self.local = threading.local()
        self.opened: list = []
        self.lock = threading.Lock()

    def get(self):
        pair = getattr(self.local, "pair", None)
        if pair is None:
            pair = self.local.pair = tuple(rasterio.open(p) for p in self.paths)
            with self.lock:
                self.opened.append(pair)
        return pair

    def close(self):
        for pair in self.opened:
            for ds in pair:
                ds.close()


@dataclass(frozen=True)
class WindowPlan:
    """Where the full-resolution windows are read.

    Attributes:
        coarse_to_map: (3, 3) target full-resolution pixel -> reference map transform,
            accurate to ``margin_px``.
        windows: the target's windows to match (see :func:`target_grid`).
        target_stretch, reference_stretch: the scenes' stretches, shared by every window.
        margin_px: search margin around each window, full-resolution pixels.
        refine_scale: full-resolution target pixels per pixel of the coarser input, at least 1.
        window_scale: the same for the finer input (see :meth:`georef.options.RefineOptions.at_scale`).
        direct: the coarse transform was refined to within the refinement's capture range: each window
            is refined from it at once, and the matcher runs only where that refinement is weak.
    """

    coarse_to_map: np.ndarray
    windows: tuple[Window, ...]
    target_stretch: raster.Stretch
    reference_stretch: raster.Stretch
    margin_px: float
    refine_scale: float = 1.0
    window_scale: float = 1.0
    direct: bool = False


def match_windows(sources: raster.Sources, plan: WindowPlan, options: AlignOptions,
                  step: Callable[[int], None] = lambda n: None) -> list[WindowResult]:
    """Match every window of the plan.

    Args:
        sources: the rasters, bands and masks.
        plan: the windows, the coarse transform and the stretches.
        options: matcher, threshold, gate, refinement and tiles.
        step: called with 1 as each window finishes (progress).
    """
    tiles = options.tiles
    matcher = create_matcher(options.matcher, options.weights, options.device)
    pixel_size = geometry.pixel_scale(plan.coarse_to_map)
    # No guided second pass: the refinement that follows measures every window densely anyway.
    settings = FitSettings("affine", options.threshold_px, 0.0, options.seed)
    datasets = _Datasets(sources.target, sources.reference)
    with rasterio.open(sources.target) as ds, rasterio.open(sources.reference) as ref:
        centre = geometry.apply(plan.coarse_to_map, [[ds.width / 2, ds.height / 2]])[0]
        margin_m = plan.margin_px * pixel_size * raster.metres_per_unit(ref.crs, centre)

    def one(window: Window) -> WindowResult:
        tgt_ds, ref_ds = datasets.get()
        img = raster.read_window(tgt_ds, sources.target_bands, window, plan.target_stretch, sources.target_mask)
        if img is None or img.valid.mean() < tiles.min_valid or img.pixels[img.valid].std() < tiles.min_contrast:
            return WindowResult(window, "no texture")
        img = upright(img, plan.coarse_to_map)
        h, w = img.shape
        try:
            chip = raster.read_reference_chip(ref_ds, sources.reference_bands, plan.coarse_to_map @ img.to_world, w, h,
                                              margin_m, pixel_size, plan.reference_stretch, sources.reference_mask)
        except (NoOverlapError, EmptyDataError):
            return WindowResult(window, "outside reference")
        refine_settings = options.refine.at_scale(plan.refine_scale, min(h, w), plan.window_scale)
        # The coarse transform puts the window centre at the chip's centre, up to the margin.
        predicted = np.linalg.inv(chip.to_world) @ plan.coarse_to_map @ img.to_world
        refined, status = None, "refined"
        if plan.direct:
            refined = _refine_direct(img, chip, predicted, refine_settings, options.gate.max_log_nfa, options.device)
        if refined is None:
            status = "matched"
            matches = matcher.match(img.pixels, chip.pixels, img.valid, chip.valid)
            try:
                result = fit_with_guided_pass(matcher, matches, img, chip, settings)
            except MatchingError:
                return WindowResult(window, "no match")
            fit = result.fit
            if result.support < options.gate.min_inliers or _moved(fit.matrix, predicted, w, h) > plan.margin_px:
                return WindowResult(window, "no match")
            if options.refine.enabled:
                refined = refine(img, chip, fit.matrix, "affine", refine_settings, options.device)
            if refined is None:
                keep = fit.inliers
                return _used("matched", window, img, chip, result.src[keep], result.dst[keep],
                             result.matches.confidence[keep], tiles.points_per_window)
        keep = refined.inliers
        return _used(status, window, img, chip, refined.target_px[keep], refined.chip_px[keep], refined.response[keep],
                     tiles.points_per_window, refined)

    results = []
    try:
        with ThreadPoolExecutor(max_workers=max(1, tiles.jobs)) as pool:
            for result in pool.map(one, plan.windows):
                results.append(result)
                step(1)
    finally:
        datasets.close()
    log.info("windows: %s", ", ".join(f"{n} {s}" for s, n in status_counts(results).items() if n))
    return results


def _moved(matrix: np.ndarray, predicted: np.ndarray, w: int, h: int) -> float:
    """Distance, pixels, between where two target-window -> chip transforms put the window centre."""
    centre = [[w / 2, h / 2]]
    return float(np.linalg.norm(geometry.apply(matrix, centre) - geometry.apply(predicted, centre)))


def _refine_direct(img: raster.MatchImage, chip: raster.MatchImage, predicted: np.ndarray,
                   settings: RefineOptions, max_log_nfa: float, device: str = "cpu") -> Refinement | None:
    """The refinement of a window from the coarse prediction; None where its agreeing correlation
    windows are not significant (see :func:`georef.refine.window_log_nfa`) or it moves the window
    beyond the correlation's capture range: there the matcher decides."""
    refined = refine(img, chip, predicted, "affine", settings, device)
    if refined is None or refined.log_nfa > max_log_nfa:
        return None
    h, w = img.shape
    return refined if _moved(refined.matrix, predicted, w, h) <= settings.max_offset_px else None


def _used(status: str, window: Window, img: raster.MatchImage, chip: raster.MatchImage, src: np.ndarray,
          dst: np.ndarray, confidence: np.ndarray, limit: int, refined: Refinement | None = None) -> WindowResult:
    """A used window's ``limit`` strongest tie points in full-scene coordinates, and every window of its
    refinement where one ran."""
    strongest = np.argsort(-confidence)[:limit]
    windows = {} if refined is None else {
        "tried": refined.tried, "agreeing": int(refined.inliers.sum()),
        "windows_target_px": geometry.apply(img.to_world, refined.target_px),
        "windows_map_xy": geometry.apply(chip.to_world, refined.chip_px)}
    return WindowResult(window, status, geometry.apply(img.to_world, src[strongest]),
                        geometry.apply(chip.to_world, dst[strongest]), confidence[strongest], **windows)


def status_counts(results: list[WindowResult], planned: int | None = None) -> dict[str, int]:
    """Windows per outcome, every outcome of :data:`TILE_STATUSES` listed; of ``planned``, those not tried
    are "not needed"."""
    counts = {status: sum(r.status == status for r in results) for status in TILE_STATUSES}
    counts["not needed"] = max(0, (planned or len(results)) - len(results))
    return counts
