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
from rasterio.control import GroundControlPoint
from rasterio.enums import MaskFlags
from rasterio.errors import NotGeoreferencedWarning
from rasterio.windows import Window

from georef import geometry
from georef.align import Alignment
from georef.raster import open_raster

log = logging.getLogger(__name__)

_ROWS_PER_CHUNK = 1024


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
    The match's own residual is kept in the GCP's ``info``.
    """
    tp = alignment.tie_points
    idx = np.flatnonzero(tp.inlier)
    pts = tp.target_px[idx]
    picked = idx[select_spread(pts, n, first=int(tp.residual_px[idx].argmin()))]
    map_xy = geometry.apply(alignment.transform, tp.target_px[picked])
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
    target: str | Path, output: str | Path, alignment: Alignment, gcps: int | None = None
) -> Path:
    """Write the target's pixels with the alignment's georeference to a GeoTIFF.

    All bands, dtype, nodata, mask, colour interpretation, descriptions and tags
    are kept. The file is written beside ``output`` and renamed when complete.

    Args:
        target: the raster whose pixels to copy (never modified).
        output: GeoTIFF to write.
        alignment: the georeference to give it.
        gcps: embed this many tie points as GCPs instead of a geotransform.
    """
    output = Path(output)
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
            for row in range(0, src.height, _ROWS_PER_CHUNK):
                window = Window(0, row, src.width, min(_ROWS_PER_CHUNK, src.height - row))
                dst.write(src.read(window=window), window=window)
                if copy_mask:
                    dst.write_mask(src.dataset_mask(window=window), window=window)
    log.info("wrote %s", output)
    return output
