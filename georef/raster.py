"""Reading rasters for matching: band choice, nodata, normalisation, reference chips.

Everything here returns :class:`MatchImage`: a single-channel float32 image in
[0, 1], its validity mask, and the transform from its raster coordinates to the
coordinates that the caller needs (map coordinates for the reference chip,
full-resolution pixels for the target).
"""

from __future__ import annotations

import logging
import math
import os
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import pyproj
import rasterio
from rasterio.crs import CRS
from rasterio.enums import ColorInterp, MaskFlags, Resampling
from rasterio._err import CPLE_BaseError  # GDAL's errors, which rasterio exports from nowhere else
from rasterio.errors import NotGeoreferencedWarning, RasterioIOError
from rasterio.transform import from_gcps
from rasterio.warp import transform as transform_coords
from rasterio.windows import Window

from georef import geometry
from georef.errors import (
    BandError,
    CRSMismatch,
    EmptyDataError,
    InvalidOption,
    MissingGeoreference,
    NoOverlapError,
    RasterReadError,
    SearchTooLarge,
    one_line,
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
        stretch: the (low, high) per band used to normalise it.
    """

    pixels: np.ndarray
    valid: np.ndarray
    to_world: np.ndarray
    stretch: "Stretch | None" = None

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


#: GDAL's block cache while georef reads and writes, unless GDAL_CACHEMAX is set: GDAL's
#: default (5 % of RAM) alone would exceed the memory a whole scene should take. Every block
#: is decoded once either way (windows sit inside one JPEG2000 tile, the write goes in
#: chunks), so 128 MB costs no time against 256 MB and keeps 170-300 MB off the peak.
GDAL_CACHE_BYTES = 128 * 2**20


def gdal_env() -> rasterio.Env:
    """GDAL's settings for georef's reads and writes: a bounded block cache, and JPEG2000 decoded
    and GeoTIFFs compressed on every core. The user's ``GDAL_CACHEMAX`` and ``GDAL_NUM_THREADS`` win."""
    settings = {"GDAL_CACHEMAX": GDAL_CACHE_BYTES, "GDAL_NUM_THREADS": "ALL_CPUS"}
    return rasterio.Env(**{k: v for k, v in settings.items() if not os.environ.get(k)})


@dataclass(frozen=True)
class Sources:
    """What an alignment reads: two paths GDAL opens, the bands of each, and exclusion masks.

    Attributes:
        target, reference: paths GDAL opens (resolved inputs, see :mod:`georef.inputs`).
        target_bands, reference_bands: 1-based bands to read.
        target_mask, reference_mask: pixels to keep out of matching, or None.
    """

    target: str
    reference: str
    target_bands: list[int]
    reference_bands: list[int]
    target_mask: "ExclusionMask | None" = None
    reference_mask: "ExclusionMask | None" = None


@contextmanager
def open_raster(path: str | Path) -> Iterator[rasterio.io.DatasetReader]:
    """Open a raster for reading, turning GDAL failures into :class:`RasterReadError`."""
    is_virtual = str(path).startswith("/vsi")  # inside a zip or other GDAL virtual file system
    path = str(path) if is_virtual else Path(path)
    if not is_virtual and not path.exists():
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
    """GDAL's message in one line (the underlying one, where rasterio only says "see previous exception")."""
    while exc.__cause__ is not None and "previous exception" in str(exc):
        exc = exc.__cause__
    return one_line(exc)


def is_georeferenced(ds: rasterio.io.DatasetReader) -> bool:
    """True where the dataset has a geotransform (not GDAL's default identity) or GCPs."""
    return ds.transform != rasterio.Affine.identity() or bool(ds.gcps[0])


def is_north_up(transform: rasterio.Affine) -> bool:
    """True where a geotransform's columns run east and its rows south, unrotated: as chips are read."""
    return transform.b == 0 and transform.d == 0 and transform.a > 0 and transform.e < 0


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
    """Return the 1-based band indexes to read, checking that they exist and hold real numbers.

    The default is the first three non-alpha bands (true colour for most
    products), or the single band of a one-band raster.
    """
    if bands:
        missing = [b for b in bands if not 1 <= b <= ds.count]
        if missing:
            raise BandError(f"has no band {missing[0]} (it has {ds.count})", ds.name)
        chosen = list(bands)
    else:
        chosen = [i for i, ci in zip(ds.indexes, ds.colorinterp) if ci != ColorInterp.alpha][:3] or [1]
    for band in chosen:
        if ds.dtypes[band - 1].startswith("complex"):  # complex64, complex128, complex_int16
            raise BandError(f"band {band} holds complex numbers ({ds.dtypes[band - 1]}): give its amplitude", ds.name)
    return chosen


Stretch = list[tuple[float, float]]


def band_stretch(data: np.ndarray, valid: np.ndarray) -> Stretch:
    """Robust (low, high) per band from the valid pixels (a subsample: exact enough, fast on scenes).

    Derived from the data, never from fixed reflectance caps: snow and summer need different stretches.
    """
    if not valid.any():
        raise EmptyDataError("holds only nodata in the area to match")
    step = max(1, int(math.sqrt(valid.size / 250_000)))
    sample_mask = valid[::step, ::step]
    every = sample_mask.all()
    out = []
    for band in data:
        sample = band[::step, ::step]
        lo, hi = percentiles(sample.ravel() if every else sample[sample_mask], STRETCH_PERCENTILES)
        out.append((lo, hi))
    return out


def percentiles(values: np.ndarray, q: tuple[float, ...]) -> list[float]:
    """``np.percentile(values, q)`` (linear interpolation); for 8- and 16-bit unsigned pixels from a
    histogram, several times faster than sorting and equal to it (the same order statistics, interpolated).

    Args:
        values: (N,) pixel values, N > 0.
        q: percentiles in [0, 100].
    """
    if values.dtype in (np.uint8, np.uint16):
        ranks = np.cumsum(np.bincount(values))
        n = int(ranks[-1])
        out = []
        for pos in np.asarray(q, dtype=np.float64) / 100 * (n - 1):
            below = int(pos)
            # The k-th smallest value (0-based) is the first whose cumulative count exceeds k.
            a, b = np.searchsorted(ranks, [below, min(below + 1, n - 1)], side="right")
            out.append(float(a + (pos - below) * (b - a)))
        return out
    return [float(v) for v in np.percentile(values.astype(np.float32, copy=False), q)]


def normalise(data: np.ndarray, valid: np.ndarray, stretch: Stretch | None = None) -> np.ndarray:
    """Stretch each band robustly to [0, 1] and average the bands.

    Args:
        data: (B, H, W) raster values of any numeric dtype.
        valid: (H, W) bool mask of pixels to use for the statistics.
        stretch: (low, high) per band, e.g. a whole scene's (see :func:`band_stretch`);
            default derived from ``data``.

    Returns:
        (H, W) float32 in [0, 1]; invalid pixels are set to the mean of valid ones.

    Raises:
        EmptyDataError: no valid pixel or no contrast in any band.
    """
    if not valid.any():
        raise EmptyDataError("holds only nodata in the area to match")
    stretch = stretch or band_stretch(data, valid)
    out = np.zeros(valid.shape, dtype=np.float32)
    used = 0
    for band, (lo, hi) in zip(data, stretch):
        if hi <= lo:
            continue
        out += np.clip((band.astype(np.float32) - lo) / (hi - lo), 0.0, 1.0)
        used += 1
    if used == 0:
        raise EmptyDataError("has no contrast in the area to match")
    out /= used
    out[~valid] = out[valid].mean()
    return out


class ExclusionMask:
    """A raster marking pixels to keep out of matching (cloud, snow, water), read window by window.

    It is mapped onto the image it masks by extent, at any resolution (a 20 m
    Sentinel-2 scene classification layer masks 10 m bands), so it must cover the
    same extent (see :meth:`check_covers`).

    Args:
        path: the mask raster; its first band is used.
        values: pixel values to exclude; default every non-zero value.
        bits: bit positions (0: the least significant) of a quality band's flags; a pixel with any of
            them set is excluded (Landsat Collection 2 ``QA_PIXEL``: 1 dilated cloud, 3 cloud, 4 shadow).
    """

    def __init__(self, path: str | Path, values: Sequence[float] | None = None,
                 bits: Sequence[int] | None = None) -> None:
        self.path = Path(path)
        self.values = list(values) if values else None
        self.bits = list(bits) if bits else None
        if self.values and self.bits:
            raise InvalidOption("a mask takes values or bits, not both", self.path)
        with open_raster(self.path) as ds:
            self.width, self.height = ds.width, ds.height
            self.crs, self.bounds = ds.crs, None if ds.transform.is_identity else ds.bounds
            dtype = np.dtype(ds.dtypes[0])
        if self.bits is not None:
            if not np.issubdtype(dtype, np.integer):
                raise InvalidOption(f"bit flags need an integer band, not {dtype}", self.path)
            wrong = [b for b in self.bits if not 0 <= b < 8 * dtype.itemsize]
            if wrong:
                raise InvalidOption(f"bit {wrong[0]} is not one of the 0-{8 * dtype.itemsize - 1} of a {dtype} "
                                    "band", self.path)
            self.flags = np.uint64(sum(1 << b for b in set(self.bits)))

    @staticmethod
    def split(spec: str) -> tuple[str, str]:
        """The path and the values (or ``bits=...``; "" for none) of a mask's ``PATH[:values]``."""
        path, _, values = spec.rpartition(":") if ":" in Path(spec).name else (spec, "", "")
        return path, values

    @staticmethod
    def spec(path: str | Path, values: str) -> str:
        """The mask ``PATH[:values]`` of ``path`` and the ``values`` of :meth:`split` ("" for none)."""
        return f"{path}:{values}" if values else str(path)

    @classmethod
    def parse(cls, spec: str) -> "ExclusionMask":
        """``PATH``, ``PATH:V1,V2,...`` (values to exclude) or ``PATH:bits=B1,B2,...`` (flag bits to exclude)."""
        path, values = cls.split(spec)
        bits = values.startswith("bits=")
        listed = values[len("bits="):] if bits else values
        try:
            numbers = [int(v) if bits else float(v) for v in listed.split(",")] if listed else None
        except ValueError:
            kind = "bit positions" if bits else "numbers"
            raise InvalidOption(f"mask {'bits' if bits else 'values'} {listed!r} are not {kind}", path) from None
        if bits and not numbers:
            raise InvalidOption("bits= lists no bit", path)
        return cls(path, None if bits else numbers, numbers if bits else None)

    def check_covers(self, ds: rasterio.io.DatasetReader, image: str, role: str) -> None:
        """Raise :class:`InvalidOption` unless the mask can cover the extent of ``ds``.

        Their shapes must agree within a row or column of the mask. A reference's mask, where both are
        georeferenced in one CRS, must also cover the reference's bounds within a pixel of the mask; a
        target's mask may claim another position, as the target's own georeference is what is corrected.

        Args:
            ds: the image the mask is for.
            image: its path, and ``role`` ("target" or "reference"), for the message.
        """
        param = "{param:mask_target}" if role == "target" else "{param:mask_ref}"
        if abs(self.height - self.width * ds.height / ds.width) > 1:
            raise InvalidOption(f"{param} is {self.width} x {self.height} px, not the shape of the {role} "
                                f"{image} ({ds.width} x {ds.height} px) at any scale: a mask must cover its "
                                "image's extent", self.path)
        if role == "target" or self.bounds is None or ds.transform.is_identity or self.crs != ds.crs:
            return
        tolerance = max(abs(self.bounds.right - self.bounds.left) / self.width,
                        abs(self.bounds.top - self.bounds.bottom) / self.height)
        if max(abs(a - b) for a, b in zip(self.bounds, ds.bounds)) > tolerance:
            raise InvalidOption(f"{param} covers {_extent(self.bounds)} but the {role} {image} covers "
                                f"{_extent(ds.bounds)}: a mask must cover its image's extent", self.path)

    def excluded(self, image_size: tuple[int, int], window: Window, out_shape: tuple[int, int]) -> np.ndarray:
        """(H, W) bool: True where the window of an image of ``image_size`` (width, height) is masked out."""
        fx, fy = self.width / image_size[0], self.height / image_size[1]
        mask_window = Window(window.col_off * fx, window.row_off * fy, window.width * fx, window.height * fy)
        with open_raster(self.path) as ds:
            data = ds.read(1, window=mask_window, out_shape=out_shape, resampling=Resampling.nearest,
                           boundless=True, fill_value=0)
        if self.bits is not None:
            return (data.astype(np.uint64) & self.flags) != 0
        return np.isin(data, self.values) if self.values is not None else data != 0


def _extent(bounds: rasterio.coords.BoundingBox) -> str:
    return f"x {bounds.left:.10g}..{bounds.right:.10g}, y {bounds.bottom:.10g}..{bounds.top:.10g}"


def _read(
    ds: rasterio.io.DatasetReader,
    bands: list[int],
    window: Window,
    out_shape: tuple[int, int],
    mask: ExclusionMask | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Read bands and their joint validity mask, resampled to ``out_shape``; ``mask`` excludes more."""
    h, w = out_shape
    source_bytes = window.width * window.height * len(bands) * np.dtype(ds.dtypes[0]).itemsize
    # Where the width lies within a pixel of its resampled size, a strip's height can too, and GDAL would
    # copy the strip's pixels instead of resampling them (see :func:`_square_pixels`): one read then.
    if (ds.driver in ("GTiff", "VRT") and source_bytes > STRIP_SOURCE_BYTES and h > STRIP_ROWS
            and (h, w) != (window.height, window.width) and math.floor(window.width) != w):
        # A resampled read goes band by band: where the source's decoded blocks outgrow GDAL's cache, each
        # band decodes them again (a pixel-interleaved GeoTIFF without overviews) or warps them again (a
        # warped VRT). In strips of rows they stay cached: a whole tile's chip, GeoTIFF 2.3 -> 1.2 s, warped
        # to another CRS 15 -> 3.8 s.
        step, parts = window.height / h, []
        for top in range(0, h, STRIP_ROWS):
            rows = min(STRIP_ROWS, h - top)
            strip = Window(window.col_off, window.row_off + top * step, window.width, rows * step)
            parts.append(_read_bands(ds, bands, strip, (rows, w)))
        data, masks = (np.concatenate([part[i] for part in parts], axis=1) for i in (0, 1))
        full_only = parts[0][2]
    else:
        data, masks, full_only = _read_bands(ds, bands, window, out_shape)
    valid = np.all(masks == masks.max() if full_only else masks > 0, axis=0)
    if np.issubdtype(data.dtype, np.floating):  # NaN or inf is no data, whatever the nodata tag says
        valid &= np.all(np.isfinite(data), axis=0)
    if all(MaskFlags.all_valid in ds.mask_flag_enums[b - 1] for b in bands):
        valid &= ~edge_fill(data)
    if mask is not None:
        valid &= ~mask.excluded((ds.width, ds.height), window, out_shape)
    return data, valid


#: A resampled read of a GeoTIFF or VRT window whose full-resolution pixels take more bytes than this goes
#: in strips of this many output rows (see :func:`_read`).
STRIP_SOURCE_BYTES = GDAL_CACHE_BYTES // 2
STRIP_ROWS = 256


def _read_bands(ds: rasterio.io.DatasetReader, bands: list[int], window: Window,
                out_shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, bool]:
    """(B, H, W) bands and their (B or 1, H, W) masks, resampled to ``out_shape``, and whether a pixel is
    valid only where its mask is at its largest value (an averaged alpha), rather than wherever it is not 0."""
    h, w = out_shape
    downsampling = h < window.height or w < window.width
    resampling = Resampling.average if downsampling else Resampling.bilinear
    exact = (h, w) == (window.height, window.width)
    kwargs = {"window": window}
    if not exact:
        kwargs.update(out_shape=(len(bands), h, w), resampling=resampling)
    flags = [ds.mask_flag_enums[b - 1] for b in bands]
    alpha = ds.colorinterp.index(ColorInterp.alpha) + 1 if ColorInterp.alpha in ds.colorinterp else None
    try:
        if exact:
            data, masks = ds.read(bands, **kwargs), ds.read_masks(bands, window=window)
        # GDAL derives a coarse mask from every full-resolution pixel, overviews or not (a whole tile through
        # a warped VRT: minutes); a coarse read of what the mask is made of says the same.
        elif all(f == [MaskFlags.nodata] for f in flags):  # averaging leaves nodata out
            data = ds.read(bands, **kwargs)
            masks = data != np.array([ds.nodatavals[b - 1] for b in bands], np.float64)[:, None, None]
        elif alpha and all(MaskFlags.alpha in f for f in flags):  # valid where every pixel averaged in is
            both = ds.read([*bands, alpha], **{**kwargs, "out_shape": (len(bands) + 1, h, w)})
            return both[:-1], both[-1:], True
        else:
            data = ds.read(bands, **kwargs)
            masks = ds.read_masks(bands, **{**kwargs, "resampling": Resampling.nearest})
    except RasterioIOError as exc:
        raise RasterReadError(f"read failed ({_one_line(exc)})", ds.name) from exc
    return data, masks, False


def edge_fill(data: np.ndarray) -> np.ndarray:
    """(H, W) bool: zeros in every band that reach the image's edge.

    Many exported rasters fill the corners of a rotated or warped scene with 0 and
    declare no nodata; those corners are no ground, and their straight edges would
    attract keypoints and correlation. Zeros inside the image are kept.
    """
    import cv2

    zero = np.all(data == 0, axis=0).astype(np.uint8)
    if not zero.any():
        return zero.astype(bool)
    _, labels = cv2.connectedComponents(zero, connectivity=8)
    edge = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    return np.isin(labels, edge[edge > 0])


def _erode(valid: np.ndarray, px: int) -> np.ndarray:
    if valid.all() or px <= 0:
        return valid
    import cv2

    kernel = np.ones((2 * px + 1, 2 * px + 1), np.uint8)
    # Outside the image counts as valid: the image edge is handled by the matchers.
    return cv2.erode(valid.astype(np.uint8), kernel, borderType=cv2.BORDER_REPLICATE).astype(bool)


#: A target smaller than this, in pixels of the coarser input, is matched at a finer pixel.
MIN_WORKING_SIDE = 512
#: ... but at most this many times finer than the finer input.
MAX_ENLARGEMENT = 2.0


def working_pixel(target_px: float, reference_px: float, long_side: int, max_size: int) -> float:
    """The pixel size (reference units) at which target and chip are matched.

    The coarser of the two inputs, or the target decimated to ``max_size``; where the
    target would then be smaller than :data:`MIN_WORKING_SIDE`, a finer pixel, so that a
    coarse target (30 m against a 10 m reference) or a small one is enlarged rather than
    matched as a thumbnail: the learned matchers find keypoints on a grid of cells, which a
    small image fills with few.
    """
    working = max(target_px, reference_px, target_px * long_side / max_size)
    if long_side * target_px / working < MIN_WORKING_SIDE:
        working = max(min(target_px, reference_px) / MAX_ENLARGEMENT, target_px * long_side / MIN_WORKING_SIDE)
    return working


def _square_pixels(window: Window, scale_x: float, scale_y: float) -> tuple[Window, tuple[int, int]]:
    """The part of ``window`` that whole pixels resampled by ``scale_x`` x ``scale_y`` cover, and their (H, W).

    Rounding each axis of the resampled window on its own would stretch its pixels by up to half a pixel
    over the window's side, differently on each axis: on a chip of 460 px, 0.2 % wider than tall, which
    turns a similarity fitted between the images into a shear on the ground of 0.3 px at the corners of
    a 512 px target. The window is cut instead (by under one resampled pixel) so that every pixel keeps
    the asked size. Where that changes neither side by a whole pixel, GDAL would copy the pixels of the
    window's whole part rather than resample them: the window is then read as it is.
    """
    # The tolerance keeps a side that is whole pixels in exact arithmetic (170 px enlarged 3 times) whole.
    h = max(1, math.floor(window.height * scale_y + 1e-6))
    w = max(1, math.floor(window.width * scale_x + 1e-6))
    cut = Window(window.col_off, window.row_off, min(window.width, w / scale_x), min(window.height, h / scale_y))
    if (math.floor(cut.height), math.floor(cut.width)) == (h, w):
        return window, (window.height, window.width)
    return cut, (h, w)


def read_target(ds: rasterio.io.DatasetReader, bands: list[int], long_side: int,
                mask: ExclusionMask | None = None) -> MatchImage:
    """Read a whole raster for matching, resampled so that its long side is ``long_side`` pixels.

    Shrinking averages (GDAL reads from overviews, JPEG2000 resolution levels, where
    present); enlarging, for a target coarser than its reference, interpolates.
    ``to_world`` maps the returned image's raster coordinates to full-resolution
    pixels; ``stretch`` is the scene's, for its windows to share.
    """
    factor = long_side / max(ds.width, ds.height)
    window, (h, w) = _square_pixels(Window(0, 0, ds.width, ds.height), factor, factor)
    data, valid = _read(ds, bands, window, (h, w), mask)
    try:
        stretch = band_stretch(data, valid)
        pixels = normalise(data, valid, stretch)
    except EmptyDataError as exc:
        raise EmptyDataError(exc.message, ds.name) from None
    return MatchImage(pixels, _erode(valid, NODATA_BORDER_PX), geometry.scaling(window.width / w, window.height / h),
                      stretch)


def read_window(ds: rasterio.io.DatasetReader, bands: list[int], window: Window, stretch: Stretch | None,
                mask: ExclusionMask | None = None) -> MatchImage | None:
    """Read a full-resolution window for matching; None where it holds no valid pixel or no contrast.

    ``to_world`` maps the window's raster coordinates to full-resolution pixels of the dataset.
    """
    window = Window(int(window.col_off), int(window.row_off), int(window.width), int(window.height))
    data, valid = _read(ds, bands, window, (window.height, window.width), mask)
    try:
        pixels = normalise(data, valid, stretch)
    except EmptyDataError:
        return None
    return MatchImage(pixels, _erode(valid, NODATA_BORDER_PX),
                      geometry.translation(window.col_off, window.row_off), stretch)


def metres_per_unit(crs: CRS, at: Sequence[float] | None = None) -> float:
    """Length in metres of one unit of ``crs``: for a geographic CRS, a degree of longitude at the point
    ``at`` (x, y in ``crs``; None: on the equator)."""
    if crs.is_geographic:
        lat = 0.0 if at is None else float(at[1])
        return 111_320.0 * max(math.cos(math.radians(lat)), 0.01)
    # The axes' unit, which a local (engineering) CRS has too, unlike rasterio's linear_units_factor.
    return pyproj.CRS.from_user_input(crs).axis_info[0].unit_conversion_factor


def footprint_in(geo: Georeference, width: int, height: int, crs: CRS, path: str | None = None) -> np.ndarray:
    """Affine approximation of a raster's pixel-to-map transform expressed in ``crs``.

    Returns:
        (3, 3) transform from the raster's pixel coordinates to map coordinates of ``crs``.

    Raises:
        CRSMismatch: PROJ knows no way from the raster's CRS to ``crs`` (a local engineering CRS, for
            instance); ``path`` names the raster.
    """
    if geo.crs == crs:
        return geo.pixel_to_map
    px = geometry.grid_points(width, height, 8)
    src = geometry.apply(geo.pixel_to_map, px)
    try:
        xs, ys = transform_coords(geo.crs, crs, src[:, 0], src[:, 1])
    except CPLE_BaseError as exc:
        names = [pyproj.CRS.from_user_input(c).name for c in (geo.crs, crs)]
        log.debug("PROJ: %s", one_line(exc))
        raise CRSMismatch(f"PROJ knows no way from its CRS ({names[0]}) to {names[1]}", path) from None
    return geometry.fit_affine_lstsq(px, np.column_stack([xs, ys]))


#: Most pixels of a reference chip (3 float32 bands: 0.8 GB), far above what a target matched at
#: ``max_size`` needs even with a 10 km margin.
MAX_CHIP_PIXELS = 64_000_000


def read_reference_chip(
    ds: rasterio.io.DatasetReader,
    bands: list[int],
    footprint: np.ndarray,
    width: float,
    height: float,
    margin_m: float,
    pixel_size: float,
    stretch: Stretch | None = None,
    mask: ExclusionMask | None = None,
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
        stretch: (low, high) per band, e.g. the whole reference's; default the chip's own.
        mask: pixels to exclude from matching.

    Returns:
        The chip; ``to_world`` maps its raster coordinates to reference map coordinates.

    Raises:
        NoOverlapError: the footprint plus the margin misses the reference.
        SearchTooLarge: the chip would hold more than :data:`MAX_CHIP_PIXELS`.
    """
    t = ds.transform
    if not is_north_up(t):
        raise MissingGeoreference("has a rotated or mirrored geotransform; warp it north-up first", ds.name)
    corners = geometry.apply(footprint, geometry.corners(width, height))
    margin = margin_m / metres_per_unit(ds.crs, corners.mean(axis=0))
    (x0, y0), (x1, y1) = corners.min(axis=0) - margin, corners.max(axis=0) + margin
    # Reference pixel window, rounded outwards and clipped to the dataset.
    box = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
    cols, rows = geometry.apply(np.linalg.inv(geometry.to_matrix(t)), box).T
    c0, c1 = max(0, math.floor(min(cols))), min(ds.width, math.ceil(max(cols)))
    r0, r1 = max(0, math.floor(min(rows))), min(ds.height, math.ceil(max(rows)))
    if c1 <= c0 or r1 <= r0:
        raise NoOverlapError(
            f"does not overlap the target footprint within the search margin of {margin_m:g} m", ds.name
        )
    if c1 - c0 < 8 or r1 - r0 < 8:
        raise NoOverlapError(f"holds only {c1 - c0} x {r1 - r0} of its pixels within {margin_m:g} m of the target "
                             "footprint, too few to match", ds.name)
    window = Window(c0, r0, c1 - c0, r1 - r0)
    scale_x, scale_y = abs(t.a) / pixel_size, abs(t.e) / pixel_size
    if abs(scale_x - 1) < 1e-3 and abs(scale_y - 1) < 1e-3:
        h, w = window.height, window.width  # same resolution: read the pixels as they are
    else:
        window, (h, w) = _square_pixels(window, scale_x, scale_y)
    if h * w > MAX_CHIP_PIXELS:
        raise SearchTooLarge(
            f"the area to search ({margin_m:g} m around the target) would be {w} x {h} px at the pixel of "
            f"{pixel_size:g} it is matched at (its own: {abs(t.a):g}), over {MAX_CHIP_PIXELS / 1e6:.0f} million: "
            "the target's pixel is far finer than the reference's, or {param:max_shift} too wide", ds.name)
    data, valid = _read(ds, bands, window, (h, w), mask)
    try:
        stretch = stretch or band_stretch(data, valid)
        pixels = normalise(data, valid, stretch)
    except EmptyDataError as exc:
        raise EmptyDataError(exc.message, ds.name) from None
    chip_to_map = (
        geometry.to_matrix(ds.window_transform(window))
        @ geometry.scaling(window.width / w, window.height / h)
    )
    return MatchImage(pixels, _erode(valid, NODATA_BORDER_PX), chip_to_map, stretch)
