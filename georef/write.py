"""Applying an alignment: the target's pixels, unchanged, with a corrected georeference."""

from __future__ import annotations

import logging
import os
import uuid
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
import rasterio
import rasterio.shutil
from affine import Affine
from rasterio.control import GroundControlPoint
from rasterio.enums import Resampling
from rasterio.warp import reproject
from rasterio.enums import MaskFlags
from rasterio.errors import NotGeoreferencedWarning
from rasterio.windows import Window
from tqdm import tqdm

from georef import geometry
from georef.align import Alignment
from georef.errors import OutputExistsError
from georef.models import POLYNOMIAL_ORDERS, WARP_MODELS
from georef.raster import open_raster

log = logging.getLogger(__name__)

_ROWS_PER_CHUNK = 1024
#: GCPs written for a polynomial or spline model when the user names no number.
DEFAULT_MODEL_GCPS = 64


@contextmanager
def atomic_path(output: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``output``; rename it to ``output`` only on success."""
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.{uuid.uuid4().hex[:8]}.part{output.suffix}")
    try:
        yield tmp
        os.replace(tmp, output)
    finally:
        for leftover in (tmp, Path(f"{tmp}.aux.xml")):
            leftover.unlink(missing_ok=True)


def refuse_existing(*paths: str | Path | None, overwrite: bool = False) -> None:
    """Raise before any work if an output exists and overwriting was not asked for."""
    for path in paths:
        if path is not None and Path(path).exists() and not overwrite:
            raise OutputExistsError("exists; use --overwrite to replace it", path)


def select_spread(points: np.ndarray, n: int, first: int = 0) -> np.ndarray:
    """Indexes of ``n`` well-spread points, by farthest-point sampling from ``first``."""
    n = min(n, len(points))
    chosen = [first]
    dist = np.linalg.norm(points - points[first], axis=1)
    for _ in range(n - 1):
        nxt = int(dist.argmax())
        chosen.append(nxt)
        dist = np.minimum(dist, np.linalg.norm(points - points[nxt], axis=1))
    return np.array(chosen)


def gcps_for(alignment: Alignment, n: int) -> list[GroundControlPoint]:
    """``n`` well-spread inlier tie points as GCPs.

    A GCP's map position is the fitted model's, not the single match's: GDAL
    refits a polynomial to the GCPs, and the model already averages all inliers.
    So the GCPs carry the full model (homography, polynomial or spline).
    The match's own residual is kept in the GCP's ``info``.
    """
    tp = alignment.tie_points
    idx = np.flatnonzero(tp.inlier)
    pts = tp.target_px[idx]
    picked = idx[select_spread(pts, n, first=int(tp.residual_px[idx].argmin()))]
    map_xy = alignment.predict(tp.target_px[picked])
    return [
        GroundControlPoint(
            row=float(tp.target_px[i, 1]),
            col=float(tp.target_px[i, 0]),
            x=float(x),
            y=float(y),
            id=str(k + 1),
            info=f"residual {tp.residual_px[i]:.3f} px",
        )
        for k, (i, (x, y)) in enumerate(zip(picked, map_xy))
    ]


def write_aligned(
    target: str | Path, output: str | Path, alignment: Alignment, gcps: int | None = None, progress: bool = False
) -> Path:
    """Write the target's pixels with the alignment's georeference to a GeoTIFF.

    All bands, dtype, nodata, mask, colour interpretation, descriptions and tags
    are kept. The file is written beside ``output`` and renamed when complete.

    Args:
        target: the raster whose pixels to copy (never modified).
        output: GeoTIFF to write.
        alignment: the georeference to give it.
        gcps: embed this many tie points as GCPs instead of a geotransform; a
            polynomial or spline model always travels as GCPs (default 64).
        progress: show a progress bar.
    """
    output = Path(output)
    if alignment.model in WARP_MODELS and not gcps:
        gcps = DEFAULT_MODEL_GCPS
    with open_raster(target) as src, atomic_path(output) as tmp:
        profile = {
            "driver": "GTiff",
            "width": src.width,
            "height": src.height,
            "count": src.count,
            "dtype": src.dtypes[0],
            "nodata": src.nodata,
            "crs": alignment.crs,
            "compress": "deflate",
            "zlevel": 1,  # a scene is copied at close to decoding speed; higher levels save little
            "num_threads": "ALL_CPUS",
            "tiled": True,
            "blockxsize": 256,
            "blockysize": 256,
            "BIGTIFF": "IF_SAFER",
        }
        if gcps:
            profile.pop("crs")
        else:
            profile["transform"] = geometry.to_affine(alignment.geotransform)
        copy_mask = all(MaskFlags.per_dataset in flags for flags in src.mask_flag_enums)
        with warnings.catch_warnings():
            # A GCP-only file has no geotransform when opened; the GCPs are set right after.
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            dst = rasterio.open(tmp, "w", **profile)
        with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True), dst:
            if gcps:
                dst.gcps = (gcps_for(alignment, gcps), alignment.crs)
            dst.colorinterp = src.colorinterp
            dst.update_tags(**src.tags())
            for b in src.indexes:
                dst.update_tags(b, **src.tags(b))
                if src.descriptions[b - 1]:
                    dst.set_band_description(b, src.descriptions[b - 1])
            for row in tqdm(range(0, src.height, _ROWS_PER_CHUNK), desc="writing", unit="chunk",
                            disable=not progress, leave=False):
                window = Window(0, row, src.width, min(_ROWS_PER_CHUNK, src.height - row))
                dst.write(src.read(window=window), window=window)
                if copy_mask:
                    dst.write_mask(src.dataset_mask(window=window), window=window)
    log.info("wrote %s", output)
    return output


def _model_gcps(alignment: Alignment, n: int = 12) -> list[GroundControlPoint]:
    """An n x n grid of GCPs placed by the model: lets GDAL's warper reproduce it."""
    px = geometry.grid_points(alignment.width, alignment.height, n)
    px = np.vstack([px, geometry.corners(alignment.width, alignment.height)])
    xy = alignment.predict(px)
    return [GroundControlPoint(row=float(r), col=float(c), x=float(x), y=float(y), id=str(i + 1))
            for i, ((c, r), (x, y)) in enumerate(zip(px, xy))]


def output_grid(alignment: Alignment, resolution: float | None = None) -> tuple[Affine, int, int]:
    """The reference pixel grid (or one of ``resolution``, same origin) covering the aligned target.

    Without a reference (GCPs applied by ``georef fit``) the grid has the fitted
    pixel size and its origin on a multiple of it.
    """
    if alignment.reference:
        with open_raster(alignment.reference) as ref:
            origin_x, origin_y = ref.transform.c, ref.transform.f
            res_x, res_y = abs(ref.transform.a), abs(ref.transform.e)
    else:
        origin_x = origin_y = 0.0
        res_x = res_y = float(np.sqrt(abs(np.linalg.det(alignment.geotransform[:2, :2]))))
    if resolution:
        res_x = res_y = float(resolution)
    edge = np.linspace(0, 1, 33)[:, None]
    w, h = alignment.width, alignment.height
    outline = np.vstack([np.hstack([edge * w, 0 * edge]), np.hstack([w + 0 * edge, edge * h]),
                         np.hstack([edge * w, h + 0 * edge]), np.hstack([0 * edge, edge * h])])
    xy = alignment.predict(outline)
    col0 = np.floor((xy[:, 0].min() - origin_x) / res_x)
    col1 = np.ceil((xy[:, 0].max() - origin_x) / res_x)
    row0 = np.floor((origin_y - xy[:, 1].max()) / res_y)
    row1 = np.ceil((origin_y - xy[:, 1].min()) / res_y)
    transform = Affine(res_x, 0, origin_x + col0 * res_x, 0, -res_y, origin_y - row0 * res_y)
    return transform, int(col1 - col0), int(row1 - row0)


def write_warped(
    target: str | Path,
    output: str | Path,
    alignment: Alignment,
    resampling: Resampling = Resampling.cubic,
    resolution: float | None = None,
) -> Path:
    """Resample the target onto the reference grid through GDAL's warper; write a Cloud-Optimized GeoTIFF.

    Affine-family models warp through the geotransform; a homography or spline
    through GCPs with GDAL's thin-plate spline; a polynomial through GCPs of its order.
    All bands are kept; nodata stays nodata, and without nodata a mask marks
    the pixels outside the target.

    Args:
        target: the raster to warp (never modified).
        output: the COG to write.
        alignment: where the target belongs.
        resampling: GDAL resampling method.
        resolution: output pixel size in reference units; default the reference's.
    """
    output = Path(output)
    dst_transform, width, height = output_grid(alignment, resolution)
    with open_raster(target) as src:
        data = src.read()
        nodata = src.nodata
        valid = src.dataset_mask()
        profile = dict(driver="GTiff", width=width, height=height, count=src.count, dtype=src.dtypes[0],
                       nodata=nodata, crs=alignment.crs, transform=dst_transform, tiled=True)
        colorinterp, tags = src.colorinterp, src.tags()
    georef: dict = {}
    if alignment.model in ("shift", "similarity", "affine"):
        georef["src_transform"] = geometry.to_affine(alignment.transform)
    else:
        georef["gcps"] = _model_gcps(alignment)
        if alignment.model in POLYNOMIAL_ORDERS:
            georef["MAX_GCP_ORDER"] = POLYNOMIAL_ORDERS[alignment.model]
        else:
            georef["SRC_METHOD"] = "GCP_TPS"
    warped = np.zeros((data.shape[0], height, width), data.dtype)
    if nodata is not None:
        warped[:] = nodata
    common = dict(src_crs=alignment.crs, dst_transform=dst_transform, dst_crs=alignment.crs, **georef)
    reproject(data, warped, src_nodata=nodata, dst_nodata=nodata, resampling=resampling, **common)
    mask = np.zeros((height, width), np.uint8)
    reproject(valid, mask, resampling=Resampling.nearest, dst_nodata=0, src_nodata=None, **common)
    with atomic_path(output) as tmp:
        staging = tmp.with_name(tmp.name + ".staging.tif")
        try:
            with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True), rasterio.open(staging, "w", **profile) as dst:
                dst.write(warped)
                dst.colorinterp = colorinterp
                dst.update_tags(**tags)
                if nodata is None:
                    dst.write_mask(mask)
            rasterio.shutil.copy(staging, tmp, driver="COG", compress="deflate")
        finally:
            staging.unlink(missing_ok=True)
    log.info("wrote warped COG %s (%d x %d)", output, width, height)
    return output
