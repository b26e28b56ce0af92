"""Reading rasters for matching: band choice, nodata, normalisation, reference chips.

Everything here returns :class:`MatchImage`: a single-channel float32 image in
[0, 1], its validity mask, and the transform from its raster coordinates to the
coordinates that the caller needs (map coordinates for the reference chip,
full-resolution pixels for the target).
"""

from __future__ import annotations

import logging
import math
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.enums import ColorInterp, Resampling
from rasterio.errors import NotGeoreferencedWarning, RasterioIOError
from rasterio.transform import from_gcps
from rasterio.warp import transform as transform_coords
from rasterio.windows import Window

from georef import geometry
from georef.errors import (
    BandError,
    EmptyDataError,
    MissingGeoreference,
    NoOverlapError,
    RasterReadError,
)

log = logging.getLogger(__name__)

#: Percentiles of the robust stretch; derived per image and band, never fixed reflectance caps.
STRETCH_PERCENTILES = (2.0, 98.0)
#: Pixels this close to nodata hold no keypoints: the data/nodata edge is not a ground feature.
NODATA_BORDER_PX = 4


@dataclass
class MatchImage:
    """A normalised image ready for a matcher.

    Attributes:
        pixels: (H, W) float32 in [0, 1]; invalid pixels hold the valid mean.
        valid: (H, W) bool, True where the data may carry keypoints.
        to_world: (3, 3) transform from this image's raster coordinates to the
            coordinates of interest (map coordinates, or full-resolution pixels).
    """

    pixels: np.ndarray
    valid: np.ndarray
    to_world: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        return self.pixels.shape


@dataclass(frozen=True)
class Georeference:
    """Where a raster claims to be.

    Attributes:
        pixel_to_map: (3, 3) transform from raster pixel coordinates to map coordinates.
        crs: the CRS of the map coordinates.
        source: 'geotransform' or 'gcps'.
    """

    pixel_to_map: np.ndarray
    crs: CRS
    source: str


@contextmanager
def open_raster(path: str | Path) -> Iterator[rasterio.io.DatasetReader]:
    """Open a raster for reading, turning GDAL failures into :class:`RasterReadError`."""
    path = Path(path)
    if not path.exists():
        raise RasterReadError("no such file", path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            ds = rasterio.open(path)
    except RasterioIOError as exc:
        raise RasterReadError(f"not a raster GDAL can read ({_one_line(exc)})", path) from exc
    with ds:
        yield ds


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def is_georeferenced(ds: rasterio.io.DatasetReader) -> bool:
    """True where the dataset has a geotransform (not GDAL's default identity) or GCPs."""
    return ds.transform != rasterio.Affine.identity() or bool(ds.gcps[0])


def georeference(ds: rasterio.io.DatasetReader, assume_crs: CRS | None = None) -> Georeference:
    """Return the dataset's georeference, from its geotransform or else its GCPs.

    Args:
        ds: an open dataset.
        assume_crs: CRS to use when the dataset has a geotransform but no CRS
            (a PNG or JPEG with only a world file).

    Raises:
        MissingGeoreference: no geotransform and no GCPs, or no CRS to use.
    """
    gcps, gcp_crs = ds.gcps
    if ds.transform != rasterio.Affine.identity():
        matrix, crs, source = geometry.to_matrix(ds.transform), ds.crs, "geotransform"
    elif gcps:
        matrix, crs, source = geometry.to_matrix(from_gcps(gcps)), gcp_crs, "gcps"
    else:
        raise MissingGeoreference(
            "has no georeference (no geotransform, world file or GCPs); "
            "give it an approximate one, a global search is not supported yet",
            ds.name,
        )
    if crs is None:
        if assume_crs is None:
            raise MissingGeoreference("has a geotransform but no CRS", ds.name)
        log.warning("%s has no CRS; assuming %s", ds.name, assume_crs.to_string())
        crs = assume_crs
    return Georeference(matrix, crs, source)


def resolve_bands(ds: rasterio.io.DatasetReader, bands: Sequence[int] | None) -> list[int]:
    """Return the 1-based band indexes to read, checking that they exist.

    The default is the first three non-alpha bands (true colour for most
    products), or the single band of a one-band raster.
    """
    if bands:
        missing = [b for b in bands if not 1 <= b <= ds.count]
        if missing:
            raise BandError(f"has no band {missing[0]} (it has {ds.count})", ds.name)
        return list(bands)
    colour = [i for i, ci in zip(ds.indexes, ds.colorinterp) if ci != ColorInterp.alpha]
    return colour[:3] or [1]


def normalise(data: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Stretch each band robustly to [0, 1] and average the bands.

    Args:
        data: (B, H, W) raster values of any numeric dtype.
        valid: (H, W) bool mask of pixels to use for the statistics.

    Returns:
        (H, W) float32 in [0, 1]; invalid pixels are set to the mean of valid ones.

    Raises:
        EmptyDataError: no valid pixel or no contrast in any band.
    """
    if not valid.any():
        raise EmptyDataError("holds only nodata in the area to match")
    out = np.zeros(valid.shape, dtype=np.float32)
    used = 0
    # The percentiles come from a subsample: exact enough, and fast on large scenes.
    step = max(1, int(math.sqrt(valid.size / 250_000)))
    sample_mask = valid[::step, ::step]
    for band in data:
        sample = band[::step, ::step][sample_mask].astype(np.float32)
        lo, hi = np.percentile(sample, STRETCH_PERCENTILES)
        if hi <= lo:
            continue
        out += np.clip((band.astype(np.float32) - lo) / (hi - lo), 0.0, 1.0)
        used += 1
    if used == 0:
        raise EmptyDataError("has no contrast in the area to match")
    out /= used
    out[~valid] = out[valid].mean()
    return out


def _read(
    ds: rasterio.io.DatasetReader,
    bands: list[int],
    window: Window,
    out_shape: tuple[int, int],
) -> tuple[np.ndarray, np.ndarray]:
    """Read bands and their joint validity mask, resampled to ``out_shape``."""
    h, w = out_shape
    downsampling = h < window.height or w < window.width
    resampling = Resampling.average if downsampling else Resampling.bilinear
    exact = (h, w) == (window.height, window.width)
    kwargs = {"window": window}
    if not exact:
        kwargs.update(out_shape=(len(bands), h, w), resampling=resampling)
    try:
        data = ds.read(bands, **kwargs)
        masks = ds.read_masks(bands, **({"window": window} if exact else {**kwargs, "resampling": Resampling.nearest}))
    except RasterioIOError as exc:
        raise RasterReadError(f"read failed ({_one_line(exc)})", ds.name) from exc
    valid = np.all(masks > 0, axis=0)
    return data, valid


def _erode(valid: np.ndarray, px: int) -> np.ndarray:
    if valid.all() or px <= 0:
        return valid
    import cv2

    kernel = np.ones((2 * px + 1, 2 * px + 1), np.uint8)
    # Outside the image counts as valid: the image edge is handled by the matchers.
    return cv2.erode(valid.astype(np.uint8), kernel, borderType=cv2.BORDER_REPLICATE).astype(bool)


def read_target(ds: rasterio.io.DatasetReader, bands: list[int], max_size: int) -> MatchImage:
    """Read a target for matching, decimated so that its long side is at most ``max_size``.

    ``to_world`` maps the returned image's raster coordinates to full-resolution
    target pixels.
    """
    factor = max(1.0, max(ds.width, ds.height) / max_size)
    h, w = max(1, round(ds.height / factor)), max(1, round(ds.width / factor))
    data, valid = _read(ds, bands, Window(0, 0, ds.width, ds.height), (h, w))
    try:
        pixels = normalise(data, valid)
    except EmptyDataError as exc:
        raise EmptyDataError(exc.message, ds.name) from None
    return MatchImage(pixels, _erode(valid, NODATA_BORDER_PX), geometry.scaling(ds.width / w, ds.height / h))


def metres_per_unit(crs: CRS, lat: float = 0.0) -> float:
    """Length in metres of one unit of ``crs`` (a degree at latitude ``lat`` for geographic CRSs)."""
    if crs.is_geographic:
        return 111_320.0 * max(math.cos(math.radians(lat)), 0.01)
    return crs.linear_units_factor[1]


def footprint_in(geo: Georeference, width: int, height: int, crs: CRS) -> np.ndarray:
    """Affine approximation of a raster's pixel-to-map transform expressed in ``crs``.

    Returns:
        (3, 3) transform from the raster's pixel coordinates to map coordinates of ``crs``.
    """
    if geo.crs == crs:
        return geo.pixel_to_map
    px = geometry.grid_points(width, height, 8)
    src = geometry.apply(geo.pixel_to_map, px)
    xs, ys = transform_coords(geo.crs, crs, src[:, 0], src[:, 1])
    return geometry.fit_affine_lstsq(px, np.column_stack([xs, ys]))


def read_reference_chip(
    ds: rasterio.io.DatasetReader,
    bands: list[int],
    footprint: np.ndarray,
    width: float,
    height: float,
    margin_m: float,
    pixel_size: float,
) -> MatchImage:
    """Read the part of the reference around a footprint, at a given pixel size.

    Args:
        ds: the reference dataset (north-up geotransform).
        bands: 1-based band indexes.
        footprint: (3, 3) target pixel -> reference map transform (the target's
            approximate georeference in the reference CRS).
        width, height: target size in pixels.
        margin_m: search margin around the footprint, in metres.
        pixel_size: pixel size of the chip, in reference CRS units.

    Returns:
        The chip; ``to_world`` maps its raster coordinates to reference map coordinates.

    Raises:
        NoOverlapError: the footprint plus the margin misses the reference.
    """
    t = ds.transform
    if t.b != 0 or t.d != 0:
        raise MissingGeoreference("has a rotated geotransform; warp it north-up first", ds.name)
    corners = geometry.apply(footprint, geometry.corners(width, height))
    centre_lat = latitude(ds.crs, corners.mean(axis=0))
    margin = margin_m / metres_per_unit(ds.crs, centre_lat)
    (x0, y0), (x1, y1) = corners.min(axis=0) - margin, corners.max(axis=0) + margin
    # Reference pixel window, rounded outwards and clipped to the dataset.
    box = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
    cols, rows = geometry.apply(np.linalg.inv(geometry.to_matrix(t)), box).T
    c0, c1 = max(0, math.floor(min(cols))), min(ds.width, math.ceil(max(cols)))
    r0, r1 = max(0, math.floor(min(rows))), min(ds.height, math.ceil(max(rows)))
    if c1 - c0 < 8 or r1 - r0 < 8:
        raise NoOverlapError(
            f"does not overlap the target footprint within the search margin of {margin_m:g} m", ds.name
        )
    window = Window(c0, r0, c1 - c0, r1 - r0)
    scale_x, scale_y = abs(t.a) / pixel_size, abs(t.e) / pixel_size
    if abs(scale_x - 1) < 1e-3 and abs(scale_y - 1) < 1e-3:
        scale_x = scale_y = 1.0  # same resolution: read the pixels as they are
    h, w = max(1, round(window.height * scale_y)), max(1, round(window.width * scale_x))
    data, valid = _read(ds, bands, window, (h, w))
    try:
        pixels = normalise(data, valid)
    except EmptyDataError as exc:
        raise EmptyDataError(exc.message, ds.name) from None
    chip_to_map = (
        geometry.to_matrix(ds.window_transform(window))
        @ geometry.scaling(window.width / w, window.height / h)
    )
    return MatchImage(pixels, _erode(valid, NODATA_BORDER_PX), chip_to_map)


def latitude(crs: CRS, xy: np.ndarray) -> float:
    """Latitude of a point given in ``crs``."""
    if crs.is_geographic:
        return float(xy[1])
    _, lat = transform_coords(crs, CRS.from_epsg(4326), [xy[0]], [xy[1]])
    return float(lat[0])
