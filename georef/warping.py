"""The reference as the target needs it: in the target's CRS, north-up, with overviews for coarse reads.

A target's position is fitted as one transform from its pixels into the map, and
that map must be the target's own CRS: where the reference is in another one,
the true mapping bends (a 51 km strip in UTM against a Web Mercator reference
was off by up to 8.6 px; a whole Sentinel-2 tile by 112 px). The reference is
then read through a warped VRT (GDAL warps only what is read), which also turns
a rotated geotransform north-up.
"""

from __future__ import annotations

import logging
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pyproj
import rasterio
from rasterio._err import CPLE_BaseError  # GDAL's errors, which rasterio exports from nowhere else
from rasterio.crs import CRS
from rasterio.enums import ColorInterp, Resampling
from rasterio.shutil import copy as copy_dataset
from rasterio.vrt import WarpedVRT

from georef.errors import CRSMismatch, GeorefError, one_line
from georef.raster import ExclusionMask, is_georeferenced, is_north_up, open_raster

log = logging.getLogger(__name__)


def claimed_crs(path: str, assumed: str | None = None) -> CRS | None:
    """The CRS a target claims: that of its geotransform or GCPs, else ``assumed`` (``--target-crs``, also the
    CRS a target with no georeference at all is given); None where it has no CRS and none is assumed (it
    then takes the reference's)."""
    with open_raster(path) as ds:
        own = None
        if is_georeferenced(ds):
            own = ds.crs if ds.transform != rasterio.Affine.identity() else ds.gcps[1]
    return own or (CRS.from_user_input(assumed) if assumed else None)


@contextmanager
def reference_in_crs(reference: str, crs: CRS | None, mask: str | None = None,
                     assumed: str | None = None) -> Iterator[tuple[str, str | None]]:
    """The reference, and its exclusion mask, as GDAL reads them in ``crs``, north-up.

    Where the target claims another CRS than the reference's, the reference's geotransform is rotated or
    mirrored (south-up), or the reference has a geotransform but no CRS and one is ``assumed`` (a world
    file), the reference is read through a warped VRT (cubic), and everything, the output included, lives
    in the target's CRS. The mask is warped onto the same grid (nearest), after it is checked against the
    reference itself.

    Args:
        reference: a path GDAL opens.
        crs: the target's CRS (:func:`claimed_crs`); None: the reference's.
        mask: the reference's exclusion mask, ``PATH[:values]``, or None.
        assumed: the reference's CRS where it has none of its own (``--ref-crs``).

    Yields:
        (path of the reference to read, the mask to use): the inputs themselves where ``crs`` is None or the
        reference's own and the reference is north-up, or where it has no georeference (which the caller
        reports).
    """
    with open_raster(reference) as ds:
        identity = ds.transform.is_identity
        rotated = not is_north_up(ds.transform)  # its chips are read north-up
        own = ds.crs or (CRS.from_user_input(assumed) if assumed and not identity else None)
        crs = crs or own
        as_is = own is None or identity or (ds.crs == crs and not rotated)
        if mask and not as_is:
            ExclusionMask.parse(mask).check_covers(ds, reference, "reference")
    if as_is:
        yield reference, mask
        return
    with tempfile.TemporaryDirectory(prefix="georef-") as tmp:
        warped = Path(tmp) / "reference.vrt"
        with open_raster(_with_overviews(reference, Path(tmp) / "source.vrt", "average")) as ds:
            alpha = next((i for i, ci in zip(ds.indexes, ds.colorinterp) if ci == ColorInterp.alpha), 0)
            # A north-up reference that only lacked its CRS keeps its own grid: the warp copies its pixels.
            same_grid = {} if rotated or crs != own else dict(transform=ds.transform, width=ds.width,
                                                                height=ds.height)
            try:
                with WarpedVRT(ds, src_crs=own, crs=crs, resampling=Resampling.cubic, src_alpha=alpha,
                               add_alpha=ds.nodata is None and not alpha, **same_grid) as vrt:
                    copy_dataset(vrt, warped, driver="VRT")
                    grid = dict(crs=crs, transform=vrt.transform, width=vrt.width, height=vrt.height)
            except CPLE_BaseError as exc:
                names = [pyproj.CRS.from_user_input(c).name for c in (own, crs)]
                log.debug("PROJ: %s", one_line(exc))
                raise CRSMismatch(f"PROJ knows no way from its CRS ({names[0]}) to the target's, {names[1]}",
                                  reference) from None
            # The mask covers the reference's extent: its pixels are the reference's, scaled.
            src_crs, src_transform, size = own, ds.transform, (ds.width, ds.height)
        if mask:
            mask_path, values = ExclusionMask.split(mask)
            warped_mask = Path(tmp) / "reference_mask.vrt"
            with open_raster(_with_overviews(mask_path, Path(tmp) / "mask_source.vrt", "nearest")) as m:
                scale = rasterio.Affine.scale(size[0] / m.width, size[1] / m.height)
                with WarpedVRT(m, src_crs=src_crs, src_transform=src_transform * scale,
                               resampling=Resampling.nearest, nodata=0, **grid) as vrt:
                    copy_dataset(vrt, warped_mask, driver="VRT")
            mask = ExclusionMask.spec(warped_mask, values)
        log.info("reading the reference %s warped north-up in %s", reference, crs.to_string())
        try:
            yield str(warped), mask
        except GeorefError as exc:
            exc.name_instead(warped, reference)
            if mask:
                exc.name_instead(warped_mask, mask_path)
            raise


def _with_overviews(path: str, vrt: Path, resampling: str) -> str:
    """``path`` as a warped VRT's source should be: a VRT over it with virtual overviews (by ``resampling``),
    where it has none of its own, or ``path`` itself (absolute: the warped VRT names it as it was opened).

    A warped VRT reads a coarse view through its source's overviews; without them it warps every pixel at
    full resolution and decimates after, minutes for a whole Sentinel-2 tile in another CRS.
    """
    source = path if path.startswith("/vsi") else str(Path(path).resolve())
    with open_raster(source) as ds:
        if ds.overviews(1):
            return source
        factors = [2**k for k in range(1, 12) if min(ds.width, ds.height) >> k >= 64]
        copy_dataset(ds, vrt, driver="VRT")
    if factors:
        text = vrt.read_text()
        overviews = f'<OverviewList resampling="{resampling}">{" ".join(map(str, factors))}</OverviewList>'
        vrt.write_text(text.replace("</VRTDataset>", f"  {overviews}\n</VRTDataset>"))
    return str(vrt)
