"""Benchmark cases: a target, a reference and the true target-pixel -> map transform.

The ``s2-seasons`` layout (see its README) gives same-footprint subtiles of
several seasons on one pixel grid, so the true transform between two seasons of
a file is the identity; a case warps the target by a known transform and keeps
the reference's geotransform, so the truth is that geotransform composed with
the inverse warp.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import Resampling

from georef import geometry
from georef.benchmark.regimes import Regime, add_clouds, average, crop_window, cut_reference
from georef.errors import RasterReadError


@dataclass(frozen=True)
class Pair:
    """Two seasons of one subtile."""

    tile: str
    file: str
    target_season: str
    reference_season: str
    target_png: Path
    reference_png: Path
    geotransform: Affine
    crs: CRS

    @property
    def group(self) -> str:
        return f"{self.target_season}->{self.reference_season}"

    @property
    def name(self) -> str:
        return f"{self.tile}/{Path(self.file).stem}:{self.group}"


@dataclass
class Case:
    """One benchmark case.

    Attributes:
        name: unique, stable name.
        target, reference: rasters to align.
        truth: (3, 3) true target raster pixel -> reference map transform, or
            None for a real pair without known truth (scored by the gate only).
        width, height: target size.
        metres_per_px: ground size of a target pixel.
        valid: optional (H, W) bool, target pixels that hold data (for check points).
        group: cases summarised together, e.g. the season pair ``winter->summer``.
        truth_crs: the CRS of ``truth``'s map coordinates (the tile's, or a CSV pair's reference's).
    """

    name: str
    target: Path
    reference: Path
    truth: np.ndarray | None
    width: int
    height: int
    metres_per_px: float
    valid: np.ndarray | None = None
    group: str = "pairs"
    truth_crs: CRS | None = None


@dataclass(frozen=True)
class WarpSpec:
    """Ranges of the random misregistration applied to a target's pixels.

    Attributes:
        max_shift_px: per-axis shift drawn from [-max, max].
        max_rotation_deg: rotation drawn from [-max, max] about the image centre.
        max_scale: relative scale change drawn from [-max, max].
        max_perspective: projective terms drawn from [-max, max] (per pixel); 0 keeps it affine.
    """

    max_shift_px: float = 40.0
    max_rotation_deg: float = 2.0
    max_scale: float = 0.02
    max_perspective: float = 0.0

    def draw(self, rng: np.random.Generator, width: int, height: int) -> np.ndarray:
        shift = rng.uniform(-self.max_shift_px, self.max_shift_px, 2)
        angle = rng.uniform(-self.max_rotation_deg, self.max_rotation_deg)
        scale = 1 + rng.uniform(-self.max_scale, self.max_scale)
        m = geometry.translation(*shift) @ geometry.similarity_about((width / 2, height / 2), angle, scale)
        if self.max_perspective:
            p = np.eye(3)
            p[2, :2] = rng.uniform(-self.max_perspective, self.max_perspective, 2)
            centre = (width / 2, height / 2)
            m = m @ geometry.translation(*centre) @ p @ geometry.translation(-centre[0], -centre[1])
        return m


@dataclass(frozen=True)
class CaseSpec:
    """How to build cases from an s2-seasons folder.

    Attributes:
        kind: 'warp' (pixels moved by a random known transform) or 'shift'
            (pixels untouched, geotransform offset).
        seasons: (target, reference) season pairs.
        tiles: tiles to use; None for all.
        seed: random seed of the misregistrations.
        limit: use only the first pairs.
        warp: ranges of the 'warp' misregistration.
        max_shift_m: largest offset per axis of the 'shift' case, metres.
        regime: how 'warp' cases depart from the tuned regime (resolution, crop, clouds, overlap, borders).
        strip: 'warp' cases on each tile's 512 x 5120 strip of contiguous subtiles, this many per tile
            and season pair (0: cases on the subtiles).
    """

    kind: str = "warp"
    seasons: tuple[tuple[str, str], ...] = (("winter", "summer"),)
    tiles: tuple[str, ...] | None = None
    seed: int = 0
    limit: int | None = None
    warp: WarpSpec = WarpSpec()
    max_shift_m: float = 300.0
    regime: Regime = Regime()
    strip: int = 0


def build_cases(pairs: str | Path, workdir: Path, spec: CaseSpec = CaseSpec()) -> list[Case]:
    """Cases from an s2-seasons folder (built as ``spec`` says) or a pairs CSV (used as listed)."""
    pairs = Path(pairs)
    if pairs.is_file():
        return csv_cases(pairs)[: spec.limit]
    if spec.strip:
        return strip_cases(pairs, workdir, spec)[: spec.limit]
    found = s2_seasons_pairs(pairs, list(spec.seasons), spec.tiles)[: spec.limit]
    if spec.kind == "shift":
        return [make_shift_case(p, workdir, spec.max_shift_m, spec.seed) for p in found]
    return [make_warp_case(p, workdir, spec.warp, spec.seed, spec.regime) for p in found]


def s2_seasons_pairs(
    root: str | Path,
    seasons: list[tuple[str, str]] = (("winter", "summer"),),
    tiles: list[str] | None = None,
) -> list[Pair]:
    """List the season pairs of an ``s2-seasons`` folder, in a stable order."""
    root = Path(root)
    manifest_path = root / "manifest.json"
    if not manifest_path.is_file():
        raise RasterReadError("no manifest.json: not an s2-seasons folder", root)
    manifest = json.loads(manifest_path.read_text())
    size = manifest["pixel_size_m"]
    pairs = []
    for tile, info in sorted(manifest["tiles"].items()):
        if tiles and tile not in tiles:
            continue
        ul_x, ul_y = info["tile_ul"]
        for name in sorted(info["files"], key=_subtile_order):
            col, row = (int(v) for v in Path(name).stem.split("_")[1:3])
            transform = Affine(size, 0, ul_x + size * col, 0, -size, ul_y - size * row)
            for tgt, ref in seasons:
                pairs.append(
                    Pair(tile, name, tgt, ref, root / tile / tgt / name, root / tile / ref / name,
                         transform, CRS.from_epsg(info["epsg"]))
                )
    return pairs


def _subtile_order(name: str) -> tuple[int, ...]:
    return tuple(int(v) for v in Path(name).stem.split("_")[1:3])


def _read_png(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise RasterReadError("cannot read image", path)
    return image[:, :, ::-1].transpose(2, 0, 1)  # (3, H, W) RGB


def write_geotiff(path: Path, data: np.ndarray, transform: Affine, crs: CRS, valid: np.ndarray | None = None,
                  nodata: float | None = None) -> Path:
    """Write (B, H, W) data as a GeoTIFF, with an internal mask where ``valid`` is given."""
    path.parent.mkdir(parents=True, exist_ok=True)
    profile = dict(driver="GTiff", width=data.shape[2], height=data.shape[1], count=data.shape[0],
                   dtype=data.dtype, crs=crs, transform=transform, compress="deflate", nodata=nodata, tiled=True)
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True), rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
        if valid is not None:
            dst.write_mask(valid.astype(np.uint8) * 255)
    return path


def warp_pixels(data: np.ndarray, warp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Move each pixel at raster position q to ``warp @ q``; returns the image and its validity."""
    _, h, w = data.shape
    # OpenCV works in index coordinates (pixel centre at 0).
    to_index = geometry.translation(-geometry.PIXEL_CENTRE, -geometry.PIXEL_CENTRE)
    m = to_index @ warp @ np.linalg.inv(to_index)
    out = np.stack([cv2.warpPerspective(b, m, (w, h), flags=cv2.INTER_CUBIC) for b in data])
    valid = cv2.warpPerspective(np.full((h, w), 255, np.uint8), m, (w, h), flags=cv2.INTER_NEAREST) > 0
    # Cubic interpolation blends in the border: only pixels away from it count as valid.
    valid = cv2.erode(valid.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    out[:, ~valid] = 0
    return out, valid


def _case_rng(seed: int, name: str) -> np.random.Generator:
    # A case's warp depends on its name only, so subsets and orderings reproduce it.
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def make_warp_case(pair: Pair, workdir: Path, spec: WarpSpec = WarpSpec(), seed: int = 0,
                   regime: Regime = Regime()) -> Case:
    """Misregister the target's pixels by a random known transform; georeference it with the reference grid.

    ``regime`` then clouds, crops or coarsens the target and cuts or coarsens the reference; the
    truth follows every step exactly.
    """
    target = _read_png(pair.target_png)
    _, h, w = target.shape
    warp = spec.draw(_case_rng(seed, pair.name), w, h)
    warped, valid = warp_pixels(target, warp)
    truth = geometry.to_matrix(pair.geotransform) @ np.linalg.inv(warp)
    claim = pair.geotransform  # the target claims the reference's grid: its pixels carry the misregistration
    rng = _case_rng(seed, pair.name + "/regime")  # a stream of its own: the warps stay those of the tuned regime
    if regime.occlusion:
        warped = add_clouds(warped, valid, rng.uniform(*regime.occlusion), rng)
    if regime.crop:
        col, row = crop_window(valid, regime.crop, rng)
        window = (slice(row, row + regime.crop), slice(col, col + regime.crop))
        warped, valid = warped[:, window[0], window[1]], valid[window]
        truth = truth @ geometry.translation(col, row)
        claim = claim * Affine.translation(col, row)
    warped, valid = average(warped, valid, regime.target_factor)
    truth = truth @ geometry.scaling(regime.target_factor)
    claim = claim * Affine.scale(regime.target_factor)
    tag = "_".join(filter(None, ("warped", regime.tag)))
    tgt_path = _write_target(_target_path(pair, workdir, tag), warped, valid, claim, pair.crs, regime.border)
    if regime.overlap or regime.reference_factor > 1:
        ref_path = _modified_reference(pair, workdir, tag, truth, warped.shape[1:], regime, rng)
    else:
        ref_path = reference_geotiff(pair, workdir)
    height, width = warped.shape[1:]
    return Case(pair.name, tgt_path, reprojected(ref_path, regime.reference_crs), truth, width, height,
                abs(pair.geotransform.a) * regime.target_factor, valid, pair.group, pair.crs)


def reprojected(path: Path, crs: str | None) -> Path:
    """The reference GeoTIFF ``path`` reprojected to ``crs`` (cubic, outside its data masked), written once
    beside it; ``path`` itself where ``crs`` is None."""
    if crs is None:
        return path
    from rasterio.warp import calculate_default_transform, reproject

    out = path.with_name(f"{path.stem}_in_{''.join(c if c.isalnum() else '_' for c in crs)}.tif")
    if out.exists():
        return out
    with rasterio.open(path) as src:
        data, valid = src.read(), src.dataset_mask()
        transform, width, height = calculate_default_transform(src.crs, crs, src.width, src.height, *src.bounds)
        common = dict(src_transform=src.transform, src_crs=src.crs, dst_transform=transform, dst_crs=crs)
    warped = np.zeros((data.shape[0], height, width), data.dtype)
    reproject(data, warped, resampling=Resampling.cubic, **common)
    inside = np.zeros((height, width), np.uint8)
    reproject(valid, inside, resampling=Resampling.nearest, src_nodata=None, dst_nodata=0, **common)
    return write_geotiff(out, warped, transform, CRS.from_user_input(crs), inside > 0)


def _write_target(path: Path, data: np.ndarray, valid: np.ndarray, claim: Affine, crs: CRS, border: str) -> Path:
    """The warped target with its empty corners as the regime says: an internal mask, nodata 0, or plain 0."""
    data = data.copy()
    data[:, ~valid] = 0
    if border == "mask":
        return write_geotiff(path, data, claim, crs, valid)
    return write_geotiff(path, data, claim, crs, nodata=0 if border == "nodata" else None)


def _modified_reference(pair: Pair, workdir: Path, tag: str, truth: np.ndarray, target_shape: tuple[int, int],
                        regime: Regime, rng: np.random.Generator) -> Path:
    """The reference cut to cover part of the target, and/or coarsened: one file per case."""
    data, transform = _read_png(pair.reference_png), pair.geotransform
    if regime.overlap:
        to_ref = np.linalg.inv(geometry.to_matrix(transform)) @ truth
        rows, cols, _ = cut_reference(data.shape[1:], to_ref, target_shape, rng.uniform(*regime.overlap), rng)
        data, transform = data[:, rows, cols], transform * Affine.translation(cols.start, rows.start)
    data, _ = average(data, None, regime.reference_factor)
    transform = transform * Affine.scale(regime.reference_factor)
    path = workdir / pair.tile / f"{Path(pair.file).stem}_{pair.reference_season}_for_{pair.target_season}_{tag}.tif"
    return write_geotiff(path, data, transform, pair.crs)


def make_shift_case(pair: Pair, workdir: Path, max_shift_m: float = 300.0, seed: int = 0) -> Case:
    """Pixels untouched; the geotransform is offset by a random known amount (the AROSICS test)."""
    target = _read_png(pair.target_png)
    _, h, w = target.shape
    dx, dy = _case_rng(seed, pair.name).uniform(-max_shift_m, max_shift_m, 2)
    wrong = Affine.translation(dx, dy) * pair.geotransform
    tgt_path = write_geotiff(_target_path(pair, workdir, "shifted"), target, wrong, pair.crs)
    return Case(pair.name, tgt_path, reference_geotiff(pair, workdir), geometry.to_matrix(pair.geotransform),
                w, h, abs(pair.geotransform.a), group=pair.group, truth_crs=pair.crs)


def _target_path(pair: Pair, workdir: Path, kind: str) -> Path:
    # Each case draws its own misregistration: one file per season pair, even where two share a target season.
    return workdir / pair.tile / f"{Path(pair.file).stem}_{pair.target_season}_to_{pair.reference_season}_{kind}.tif"


def reference_geotiff(pair: Pair, workdir: Path) -> Path:
    path = workdir / pair.tile / f"{Path(pair.file).stem}_{pair.reference_season}.tif"
    if not path.exists():
        write_geotiff(path, _read_png(pair.reference_png), pair.geotransform, pair.crs)
    return path


#: Rows of the subtiles that form each tile's contiguous strip (column 0).
STRIP_ROWS = tuple(range(0, 5120, 512))


def strip_cases(root: str | Path, workdir: Path, spec: CaseSpec) -> list[Case]:
    """Warp cases on each tile's 512 x 5120 strip (its ten subtiles of column 0, stacked): a larger scene
    with real, not mosaicked, content, which takes the coarse-to-fine path. ``spec.strip`` cases per tile
    and season pair, each with its own warp."""
    root = Path(root)
    files = {f"tile_0_{row}.png" for row in STRIP_ROWS}
    cases = []
    found = s2_seasons_pairs(root, list(spec.seasons), spec.tiles)
    for tile in sorted({p.tile for p in found}):
        pairs = [p for p in found if p.tile == tile and p.file in files]
        for target_season, reference_season in spec.seasons:
            mine = sorted((p for p in pairs if (p.target_season, p.reference_season) ==
                           (target_season, reference_season)), key=lambda p: _subtile_order(p.file))
            if len(mine) != len(STRIP_ROWS):
                raise RasterReadError(f"{tile} lacks subtiles of the strip (column 0, rows 0-4608)", root)
            first = mine[0]
            target = np.concatenate([_read_png(p.target_png) for p in mine], axis=1)
            reference = workdir / tile / f"strip_{reference_season}.tif"
            if not reference.exists():
                write_geotiff(reference, np.concatenate([_read_png(p.reference_png) for p in mine], axis=1),
                              first.geotransform, first.crs)
            for k in range(spec.strip):
                name = f"{tile}/strip{k}:{first.group}"
                warp = spec.warp.draw(_case_rng(spec.seed, name), target.shape[2], target.shape[1])
                warped, valid = warp_pixels(target, warp)
                path = workdir / tile / f"strip{k}_{target_season}_to_{reference_season}_warped.tif"
                write_geotiff(path, warped, first.geotransform, first.crs, valid)
                cases.append(Case(name, path, reprojected(reference, spec.regime.reference_crs),
                                  geometry.to_matrix(first.geotransform) @ np.linalg.inv(warp), target.shape[2],
                                  target.shape[1], abs(first.geotransform.a), valid, first.group, first.crs))
    return cases


#: Columns of a pairs CSV; ``a`` to ``f`` (optional) are the true target
#: pixel -> reference map affine in rasterio order (x = a*col + b*row + c, y = d*col + e*row + f).
CSV_COLUMNS = ("target", "reference", "a", "b", "c", "d", "e", "f")


def csv_cases(path: str | Path) -> list[Case]:
    """Cases listed in a CSV with columns target, reference and optionally a-f (the truth).

    Relative paths are taken relative to the CSV's folder.
    """
    import csv

    from georef.raster import metres_per_unit, open_raster

    path = Path(path)
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or not {"target", "reference"} <= set(rows[0]):
        raise RasterReadError("needs the columns target and reference", path)
    cases = []
    for i, row in enumerate(rows, start=2):
        target, reference = (path.parent / row["target"]), (path.parent / row["reference"])
        truth = None
        if all(row.get(k) not in (None, "") for k in "abcdef"):
            try:
                truth = geometry.to_matrix(Affine(*(float(row[k]) for k in "abcdef")))
            except ValueError:
                raise RasterReadError(f"line {i}: the truth a-f must be numbers", path) from None
        with open_raster(target) as ds:
            width, height = ds.width, ds.height
            own = np.sqrt(abs(ds.transform.determinant))
        with open_raster(reference) as ref:
            unit, crs = (metres_per_unit(ref.crs) if ref.crs else 1.0), ref.crs
        size = (np.sqrt(abs(np.linalg.det(truth[:2, :2]))) if truth is not None else own) * unit
        name = f"{i - 1}:{Path(row['target']).stem}->{Path(row['reference']).stem}"  # row number keeps it unique
        cases.append(Case(name, target, reference, truth, width, height, float(size), truth_crs=crs))
    return cases
