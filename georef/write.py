"""Applying an alignment: the target's pixels, unchanged, with a corrected georeference."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np
import rasterio
import rasterio.shutil
from affine import Affine
from rasterio.control import GroundControlPoint
from rasterio.crs import CRS
from rasterio.enums import MaskFlags, Resampling
from rasterio.errors import NotGeoreferencedWarning
from rasterio.warp import reproject
from rasterio.warp import transform as transform_coords
from rasterio.windows import Window

from georef import geometry
from georef.errors import OutputError
from georef.files import Staging, destination
from georef.inputs import ResolvedInput
from georef.options import MAX_OUTPUT_PIXELS
from georef.raster import open_raster
from georef.result import Alignment
from georef.transforms import MODELS

log = logging.getLogger(__name__)

_ROWS_PER_CHUNK = 1024
#: GCPs written for a polynomial or spline model when the user names no number.
DEFAULT_MODEL_GCPS = 64


def gcp_count(alignment: Alignment, asked: int | None) -> int | None:
    """GCPs to write for an alignment: those asked, and for a polynomial or spline model at least some
    (:data:`DEFAULT_MODEL_GCPS`), since no geotransform can carry it; None for a geotransform."""
    if alignment.warp is not None and not asked:
        return DEFAULT_MODEL_GCPS
    return asked


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
    picked = idx[geometry.select_spread(pts, n, first=int(tp.residual_px[idx].argmin()))]
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


class _Description(NamedTuple):
    """What an output keeps of its source beside the pixels, read while the source is open."""

    colorinterp: tuple
    tags: dict
    band_tags: list[dict]
    band_names: tuple
    colour_tables: dict[int, dict]  # band -> its palette, for palette bands only

    @classmethod
    def of(cls, src) -> "_Description":
        tables = {}
        for b in src.indexes:
            try:
                tables[b] = src.colormap(b)
            except ValueError:  # no colour table: not a palette band
                pass
        return cls(src.colorinterp, src.tags(), [src.tags(b) for b in src.indexes], src.descriptions, tables)

    def give(self, dst) -> None:
        """Give ``dst`` the colour interpretation, colour tables, tags and band descriptions."""
        dst.colorinterp = self.colorinterp
        dst.update_tags(**self.tags)
        for b, table in self.colour_tables.items():
            dst.write_colormap(b, table)
        for b in dst.indexes:
            dst.update_tags(b, **self.band_tags[b - 1])
            if self.band_names[b - 1]:
                dst.set_band_description(b, self.band_names[b - 1])


def write_aligned(
    target: str | Path, output: str | Path, alignment: Alignment, gcps: int | None = None,
    staging: Staging | None = None, step: Callable[[int], None] = lambda n: None,
) -> Path:
    """Write the target's pixels with the alignment's georeference to a GeoTIFF.

    All bands, dtype, nodata, mask, colour interpretation and tables, descriptions
    and tags are kept. The file is written beside ``output`` and renamed when complete.

    Args:
        target: the raster whose pixels to copy (never modified).
        output: GeoTIFF to write.
        alignment: the georeference to give it.
        gcps: embed this many tie points as GCPs instead of a geotransform; a
            polynomial or spline model always travels as GCPs (default 64).
        staging: renames the file with the command's other outputs; default at once.
        step: called with 1 per chunk of rows written (progress).
    """
    output = Path(output)
    gcps = gcp_count(alignment, gcps)
    with open_raster(target) as src, destination(output, staging) as tmp:
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
            _Description.of(src).give(dst)
            for row in range(0, src.height, _ROWS_PER_CHUNK):
                window = Window(0, row, src.width, min(_ROWS_PER_CHUNK, src.height - row))
                dst.write(src.read(window=window), window=window)
                if copy_mask:
                    dst.write_mask(src.dataset_mask(window=window), window=window)
                step(1)
    log.info("wrote %s", output)
    return output


def _model_gcps(alignment: Alignment, n: int = 12) -> list[GroundControlPoint]:
    """An n x n grid of GCPs placed by the model: lets GDAL's warper reproduce it."""
    px = geometry.grid_points(alignment.width, alignment.height, n)
    px = np.vstack([px, geometry.corners(alignment.width, alignment.height)])
    xy = alignment.predict(px)
    return [GroundControlPoint(row=float(r), col=float(c), x=float(x), y=float(y), id=str(i + 1))
            for i, ((c, r), (x, y)) in enumerate(zip(px, xy))]


def output_grid(alignment: Alignment, resolution: float | None = None) -> tuple[Affine, int, int, CRS]:
    """The reference pixel grid (or one of ``resolution``, same origin) covering the aligned target, and its CRS
    (the reference's, which may differ from the alignment's).

    Without a reference (GCPs applied by ``georef fit``) the grid is in the alignment's CRS, has the fitted
    pixel size and its origin on a multiple of it.
    """
    crs = alignment.crs
    if alignment.reference:
        with ResolvedInput(alignment.reference) as path, open_raster(path) as ref:
            t = ref.transform
            origin_x, origin_y = t.c, t.f
            res_x, res_y = np.hypot(t.a, t.d), np.hypot(t.b, t.e)  # a rotated reference's pixel, north-up
            crs = ref.crs or crs
    else:
        origin_x = origin_y = 0.0
        res_x = res_y = geometry.pixel_scale(alignment.geotransform)
    if resolution:
        res_x = res_y = float(resolution)
    xy = alignment.predict(geometry.outline(alignment.width, alignment.height))
    if crs != alignment.crs:
        xy = np.column_stack(transform_coords(alignment.crs, crs, xy[:, 0], xy[:, 1]))
    col0 = np.floor((xy[:, 0].min() - origin_x) / res_x)
    col1 = np.ceil((xy[:, 0].max() - origin_x) / res_x)
    row0 = np.floor((origin_y - xy[:, 1].max()) / res_y)
    row1 = np.ceil((origin_y - xy[:, 1].min()) / res_y)
    transform = Affine(res_x, 0, origin_x + col0 * res_x, 0, -res_y, origin_y - row0 * res_y)
    return transform, int(col1 - col0), int(row1 - row0), crs


def write_chunks(height: int) -> int:
    """Steps :func:`write_aligned` reports for a raster ``height`` rows high."""
    return -(-height // _ROWS_PER_CHUNK)


def write_warped(
    target: str | Path,
    output: str | Path,
    alignment: Alignment,
    resampling: Resampling = Resampling.cubic,
    resolution: float | None = None,
    staging: Staging | None = None,
    max_pixels: int = MAX_OUTPUT_PIXELS,
) -> Path:
    """Resample the target onto the reference grid through GDAL's warper; write a Cloud-Optimized GeoTIFF.

    Affine-family models warp through the geotransform; a homography or spline
    through GCPs with GDAL's thin-plate spline; a polynomial through GCPs of its order.
    All bands are kept, with their colour interpretation and tables, descriptions
    and tags; nodata stays nodata, and without nodata a mask marks the pixels
    outside the target. A palette raster is resampled by nearest neighbour
    whatever ``resampling`` says (its values name colours).

    Args:
        target: the raster to warp (never modified).
        output: the COG to write.
        alignment: where the target belongs.
        resampling: GDAL resampling method.
        resolution: output pixel size in reference units; default the reference's.
        staging: renames the file with the command's other outputs; default at once.
        max_pixels: largest output, pixels per band.

    Raises:
        OutputError: the output grid would exceed ``max_pixels``.
    """
    output = Path(output)
    dst_transform, width, height, dst_crs = output_grid(alignment, resolution)
    if width * height > max_pixels:
        raise OutputError(f"would be {width} x {height} pixels, more than {max_pixels:.3g} "
                          "({param:max_output_pixels}); choose a coarser {param:target_res}", output)
    with open_raster(target) as src:
        data = src.read()
        nodata = src.nodata
        valid = src.dataset_mask()
        profile = dict(driver="GTiff", width=width, height=height, count=src.count, dtype=src.dtypes[0],
                       nodata=nodata, crs=dst_crs, transform=dst_transform, tiled=True)
        description = _Description.of(src)
    if description.colour_tables and resampling not in (Resampling.nearest, Resampling.mode):
        # A palette band's values name colours (often classes): any interpolation invents ones that are not there.
        log.warning("%s is a palette raster: warped with nearest-neighbour resampling, not %s", target,
                    resampling.name)
        resampling = Resampling.nearest
    georef: dict = {}
    model = MODELS[alignment.model]
    if model.geotransform:
        georef["src_transform"] = geometry.to_affine(alignment.transform)
    else:
        georef["gcps"] = _model_gcps(alignment)
        if model.order is not None:
            georef["MAX_GCP_ORDER"] = model.order
        else:
            georef["SRC_METHOD"] = "GCP_TPS"
    warped = np.zeros((data.shape[0], height, width), data.dtype)
    if nodata is not None:
        warped[:] = nodata
    common = dict(src_crs=alignment.crs, dst_transform=dst_transform, dst_crs=dst_crs, **georef)
    reproject(data, warped, src_nodata=nodata, dst_nodata=nodata, resampling=resampling, **common)
    mask = np.zeros((height, width), np.uint8)
    reproject(valid, mask, resampling=Resampling.nearest, dst_nodata=0, src_nodata=None, **common)
    with destination(output, staging) as tmp:
        plain = tmp.with_name(tmp.name + ".plain.tif")  # the COG driver copies from a finished raster
        try:
            with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True), rasterio.open(plain, "w", **profile) as dst:
                dst.write(warped)
                description.give(dst)
                if nodata is None:
                    dst.write_mask(mask)
            rasterio.shutil.copy(plain, tmp, driver="COG", compress="deflate")
        finally:
            plain.unlink(missing_ok=True)
    log.info("wrote warped COG %s (%d x %d)", output, width, height)
    return output
