"""Coarse-to-fine matching of whole scenes: full-resolution windows read through a coarse transform.

A 10980 x 10980 Sentinel-2 tile does not go through a matcher in one piece. The
coarse alignment (both scenes decimated, see :mod:`georef.align`) places the
target to a few pixels; then each window of a grid over the target is read at
full resolution, the reference window is read where the coarse transform puts
it, the two are matched and refined, and the tie points are mapped back to
full-scene coordinates. Windows without usable texture (snow fields, water,
cloud) are skipped and counted. Only windows are ever read.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace

import numpy as np
import rasterio
from rasterio.windows import Window
from tqdm import tqdm

from georef import geometry, raster
from georef.errors import EmptyDataError, MatchingError, NoOverlapError
from georef.refine import refine

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TileOptions:
    """How a large target is matched window by window.

    Attributes:
        size: window side, full-resolution target pixels; 0 matches the decimated scene only.
        overlap: overlap of neighbouring windows, pixels.
        max_windows: most windows matched; a larger grid is thinned evenly (enough
            tie points for any model, at a fraction of the decoding).
        jobs: windows matched at once (threads).
        points_per_window: most tie points a window contributes (the strongest).
        min_valid: least share of valid pixels for a window to be tried.
        min_contrast: least standard deviation of a normalised window to be tried.
    """

    size: int = 512
    overlap: int = 64
    max_windows: int = 25
    jobs: int = 1
    points_per_window: int = 200
    min_valid: float = 0.2
    min_contrast: float = 0.02


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


@dataclass
class WindowResult:
    """Tie points from one window.

    Attributes:
        window: the target window.
        status: 'matched', or why it was skipped ('no texture', 'outside reference', 'no match').
        target_px: (K, 2) full-resolution target raster coordinates.
        map_xy: (K, 2) reference map coordinates.
        confidence: (K,) strength of each tie point.
    """

    window: Window
    status: str
    target_px: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    map_xy: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    confidence: np.ndarray = field(default_factory=lambda: np.zeros(0))


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


def match_windows(
    target: str,
    reference: str,
    coarse_to_map: np.ndarray,
    target_img: raster.MatchImage,
    reference_stretch: raster.Stretch,
    options,
    margin_px: float,
    tgt_bands: list[int],
    ref_bands: list[int],
    masks: tuple = (None, None),
    progress: bool = False,
) -> list[WindowResult]:
    """Match every window of the grid over the target.

    Args:
        target, reference: paths GDAL opens.
        coarse_to_map: (3, 3) target full-resolution pixel -> reference map transform, accurate to ``margin_px``.
        target_img: the coarse (decimated) target read: its ``stretch`` normalises every window.
        reference_stretch: the reference scene's stretch.
        options: :class:`georef.align.AlignOptions` (matcher, threshold, refinement, tiles).
        margin_px: search margin around each window, full-resolution pixels.
        tgt_bands, ref_bands: bands to read.
        masks: exclusion masks of target and reference.
        progress: show a progress bar.
    """
    from georef.align import _fit_with_guided_pass
    from georef.matchers import create_matcher

    tiles: TileOptions = options.tiles
    matcher = create_matcher(options.matcher, options.weights)
    pixel_size = float(np.sqrt(abs(np.linalg.det(coarse_to_map[:2, :2]))))
    # No guided second pass: the refinement that follows measures every window densely anyway.
    window_options = replace(options, model="affine", guided_radius_px=0)
    datasets = _Datasets(target, reference)
    with rasterio.open(target) as ds, rasterio.open(reference) as ref:
        grid = block_aligned_grid(ds, tiles) or window_grid(ds.width, ds.height, tiles.size, tiles.overlap,
                                                              tiles.max_windows)
        margin_m = margin_px * pixel_size * raster.metres_per_unit(
            ref.crs, raster.latitude(ref.crs, geometry.apply(coarse_to_map, [[ds.width / 2, ds.height / 2]])[0]))

    def one(window: Window) -> WindowResult:
        tgt_ds, ref_ds = datasets.get()
        img = raster.read_window(tgt_ds, tgt_bands, window, target_img.stretch, masks[0])
        if img is None or img.valid.mean() < tiles.min_valid or img.pixels[img.valid].std() < tiles.min_contrast:
            return WindowResult(window, "no texture")
        h, w = img.shape
        try:
            chip = raster.read_reference_chip(ref_ds, ref_bands, coarse_to_map @ img.to_world, w, h, margin_m,
                                              pixel_size, reference_stretch, masks[1])
        except (NoOverlapError, EmptyDataError):
            return WindowResult(window, "outside reference")
        matches = matcher.match(img.pixels, chip.pixels, img.valid, chip.valid)
        try:
            fit, matches, support = _fit_with_guided_pass(matcher, matches, img, chip, window_options)
        except MatchingError:
            return WindowResult(window, "no match")
        # The coarse transform puts the window centre at the chip's centre, up to the margin.
        predicted = np.linalg.inv(chip.to_world) @ coarse_to_map @ img.to_world
        centre = [[w / 2, h / 2]]
        moved = np.linalg.norm(geometry.apply(fit.matrix, centre) - geometry.apply(predicted, centre))
        if support < options.gate.min_inliers or moved > margin_px:
            return WindowResult(window, "no match")
        src, dst, conf = None, None, None
        if options.refine:
            refined = refine(img.pixels, img.valid, chip.pixels, chip.valid, fit.matrix, "affine")
            if refined is not None:
                keep = refined.inliers
                src, dst, conf = refined.target_px[keep], refined.chip_px[keep], refined.response[keep]
        if src is None:
            keep = fit.inliers
            src = geometry.index_to_raster(matches.points0)[keep]
            dst = geometry.index_to_raster(matches.points1)[keep]
            conf = matches.confidence[keep]
        strongest = np.argsort(-conf)[: tiles.points_per_window]
        return WindowResult(window, "matched", geometry.apply(img.to_world, src[strongest]),
                            geometry.apply(chip.to_world, dst[strongest]), conf[strongest])

    results = []
    try:
        with ThreadPoolExecutor(max_workers=max(1, tiles.jobs)) as pool:
            for result in tqdm(pool.map(one, grid), total=len(grid), desc="windows", unit="window",
                               disable=not progress, leave=False):
                results.append(result)
    finally:
        datasets.close()
    counts = {s: sum(r.status == s for r in results) for s in {r.status for r in results}}
    log.info("windows: %s", ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    return results
