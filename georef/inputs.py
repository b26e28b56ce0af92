"""Inputs as delivered: Sentinel-2 ``.SAFE`` products (folder or zip), their masks, and band files given together.

Everything resolves to one path GDAL opens: a raster file, or a VRT that stacks
single-band files (Sentinel-2 ``B04.jp2,B03.jp2,B02.jp2``, Landsat band GeoTIFFs)
without copying their pixels.
"""

from __future__ import annotations

import logging
import re
import tempfile
import zipfile
from pathlib import Path
from xml.sax.saxutils import escape

from georef.errors import BandError, GeorefError, RasterReadError
from georef.raster import ExclusionMask, open_raster

log = logging.getLogger(__name__)

#: Sentinel-2 10 m bands in true-colour order.
TRUE_COLOUR = ("B04", "B03", "B02")


def is_product(path: str | Path) -> bool:
    """True for a Sentinel-2 ``.SAFE`` folder or a zip holding one."""
    p = Path(path)
    return (p.is_dir() and p.suffix.upper() == ".SAFE") or (p.suffix.lower() == ".zip" and p.is_file())


def _product_members(path: Path) -> list[str]:
    """Image files of a product, as GDAL paths (``/vsizip/`` inside a zip)."""
    if path.is_dir():
        return [str(p) for p in sorted(path.rglob("IMG_DATA/**/*.jp2"))]
    try:
        with zipfile.ZipFile(path) as z:
            names = [n for n in z.namelist() if "/IMG_DATA/" in n and n.lower().endswith(".jp2")]
    except zipfile.BadZipFile:
        raise RasterReadError("is not a readable zip file", path) from None
    return [f"/vsizip/{path.resolve()}/{n}" for n in sorted(names)]


def product_band_files(path: str | Path, bands: str = "TCI") -> list[str]:
    """The 10 m image files of a Sentinel-2 L1C/L2A product.

    Args:
        path: ``.SAFE`` folder or zip.
        bands: ``"TCI"`` (the true-colour JPEG2000) or band names such as ``"B04,B03,B02"``.

    Raises:
        RasterReadError: no image data in the product.
        BandError: a requested band is missing at 10 m.
    """
    path = Path(path)
    members = _product_members(path)
    if not members:
        raise RasterReadError("holds no IMG_DATA JPEG2000 files (not a Sentinel-2 product?)", path)
    found = []
    for name in [b.strip().upper() for b in bands.split(",")]:
        # L1C: T35UNQ_..._B04.jp2; L2A: R10m/T35UNQ_..._B04_10m.jp2
        pattern = re.compile(rf"_{name}(_10m)?\.jp2$", re.IGNORECASE)
        hits = [m for m in members if pattern.search(m) and ("R10m" in m or "_10m" not in m and "/R" not in m)]
        if not hits:
            raise BandError(f"has no 10 m {name} image", path)
        found.append(hits[0])
    return found


#: The layer of a Sentinel-2 product that a mask may name instead of a file: L2A's scene classification.
PRODUCT_MASK = "SCL"


def product_mask(spec: str | Path, mask: str | None) -> str | None:
    """``mask`` with the name of a product's own layer (``SCL``, ``SCL:3,8,9,10``) replaced by that layer's file.

    A mask that names an existing file, or that is given for an input other than a product, is returned as is.

    Args:
        spec: the input the mask is for (a ``.SAFE`` folder or zip, or anything else).
        mask: ``PATH[:values]`` as :class:`georef.raster.ExclusionMask` parses it, or None.

    Raises:
        BandError: ``SCL`` named for a product that has none (an L1C product).
        RasterReadError: ``SCL`` named for an input that is no product, with no file of that name.
    """
    if mask is None:
        return None
    name, values = ExclusionMask.split(mask)
    if name.upper() != PRODUCT_MASK or Path(name).exists():
        return mask
    if not is_product(spec):
        raise RasterReadError(f"{PRODUCT_MASK} names the scene classification of a Sentinel-2 L2A product, and "
                              f"{spec} is none (give the mask's file)", name)
    hits = [m for m in _product_members(Path(spec)) if re.search(r"_SCL_20m\.jp2$", m, re.IGNORECASE)]
    if not hits:
        raise BandError(f"has no {PRODUCT_MASK} layer (an L1C product?)", spec)
    return ExclusionMask.spec(hits[0], values)


def stack_vrt(files: list[str], folder: Path) -> Path:
    """A VRT in ``folder`` with one band per single-band file (all on one grid)."""
    first = files[0]
    with open_raster(first) as ds:
        width, height, crs, transform, dtype = ds.width, ds.height, ds.crs, ds.transform, ds.dtypes[0]
        nodata = ds.nodata
    bands_xml = []
    for i, f in enumerate(files, 1):
        with open_raster(f) as ds:
            if (ds.width, ds.height, ds.transform) != (width, height, transform):
                raise BandError(f"is not on the grid of {first} ({ds.width}x{ds.height})", f)
        nodata_xml = f"<NoDataValue>{nodata}</NoDataValue>" if nodata is not None else ""
        bands_xml.append(
            f'<VRTRasterBand dataType="{_gdal_type(dtype)}" band="{i}">{nodata_xml}<SimpleSource>'
            f'<SourceFilename relativeToVRT="0">{escape(f)}</SourceFilename><SourceBand>1</SourceBand>'
            f"</SimpleSource></VRTRasterBand>")
    srs = f"<SRS>{escape(crs.to_wkt())}</SRS>" if crs else ""
    gt = ", ".join(repr(v) for v in transform.to_gdal())
    xml = (f'<VRTDataset rasterXSize="{width}" rasterYSize="{height}">{srs}<GeoTransform>{gt}</GeoTransform>'
           + "".join(bands_xml) + "</VRTDataset>")
    vrt = folder / "stack.vrt"
    vrt.write_text(xml)
    return vrt


def _gdal_type(dtype: str) -> str:
    return {"uint8": "Byte", "uint16": "UInt16", "int16": "Int16", "uint32": "UInt32", "int32": "Int32",
            "float32": "Float32", "float64": "Float64"}[dtype]


class ResolvedInput:
    """Context manager: a path GDAL opens for ``spec`` (temporary VRTs are removed on exit).

    Args:
        spec: a raster path, a ``.SAFE`` folder or zip, or comma-separated single-band files.
        product_bands: for products, ``"TCI"`` or band names such as ``"B04,B03,B02"``.
    """

    def __init__(self, spec: str | Path, product_bands: str = "TCI") -> None:
        self.spec = str(spec)
        self.product_bands = product_bands
        self._tmp: tempfile.TemporaryDirectory | None = None
        self._stack = ""

    def __enter__(self) -> str:
        if is_product(self.spec):
            files = product_band_files(self.spec, self.product_bands)
            log.info("%s: using %s", self.spec, ", ".join(Path(f).name for f in files))
        elif "," in self.spec and not Path(self.spec).exists():
            files = [f.strip() for f in self.spec.split(",") if f.strip()]
        else:
            return self.spec
        if len(files) == 1:
            return files[0]
        self._tmp = tempfile.TemporaryDirectory(prefix="georef-")
        self._stack = str(stack_vrt(files, Path(self._tmp.name)))
        return self._stack

    def __exit__(self, exc_type, exc, traceback) -> None:
        if self._tmp is not None:
            if isinstance(exc, GeorefError):
                exc.name_instead(self._stack, self.spec)
            self._tmp.cleanup()
