"""Outputs that copy no pixels: a VRT over the target, or a GDAL ``.aux.xml`` sidecar.

Writing a GeoTIFF decodes every pixel of the target again (a Sentinel-2 JPEG2000
tile takes longer to decode than to align). Where the pixels do not change, GDAL
can be told the new georeference instead:

- a VRT that references the original file(s) (a JPEG2000, the bands of a
  ``.SAFE`` product, a band list) and carries the corrected geotransform or GCPs;
- a sidecar: GDAL reads a ``.aux.xml`` beside a raster (its PAM file) before the
  raster's own georeference, for GeoTIFF and JPEG2000 alike. It is written beside
  the target itself (``in_place``; the previous sidecar kept as ``.aux.xml.bak``) or
  beside a hard link to the target (a second name for the same pixels). A sidecar
  carries a geotransform only: GDAL ignores sidecar GCPs where the raster has a
  geotransform of its own.

Everything else a sidecar held (statistics, metadata) is kept.
"""

from __future__ import annotations

import logging
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import rasterio
import rasterio.shutil

from georef import geometry
from georef.errors import InvalidOption, OutputError, RasterReadError
from georef.files import Staging, destination
from georef.result import Alignment
from georef.write import gcp_count, gcps_for

log = logging.getLogger(__name__)

#: Elements of a VRT or PAM file that hold the georeference.
_GEOREFERENCE_TAGS = ("SRS", "GeoTransform", "GCPList")


def sidecar_path(raster: str | Path) -> Path:
    """The PAM file GDAL reads beside ``raster``."""
    return Path(f"{raster}.aux.xml")


def backup_path(raster: str | Path) -> Path:
    """Where :func:`write_sidecar` keeps the sidecar it replaces in place."""
    return Path(f"{raster}.aux.xml.bak")


def _georeference(alignment: Alignment, gcps: int | None) -> list[ET.Element]:
    """SRS and GeoTransform, or a GCPList, as GDAL's VRT and PAM files spell them."""
    wkt = alignment.crs.to_wkt()
    if gcps:
        gcp_list = ET.Element("GCPList", Projection=wkt)
        for gcp in gcps_for(alignment, gcps):
            ET.SubElement(gcp_list, "GCP", Id=gcp.id, Info=gcp.info or "", Pixel=repr(gcp.col), Line=repr(gcp.row),
                          X=repr(gcp.x), Y=repr(gcp.y))
        return [gcp_list]
    srs = ET.Element("SRS", dataAxisToSRSAxisMapping="1,2")
    srs.text = wkt
    transform = ET.Element("GeoTransform")
    transform.text = ", ".join(repr(float(v)) for v in geometry.to_affine(alignment.geotransform).to_gdal())
    return [srs, transform]


def _replace_georeference(root: ET.Element, elements: list[ET.Element]) -> None:
    for child in [c for c in root if c.tag in _GEOREFERENCE_TAGS]:
        root.remove(child)
    for i, element in enumerate(elements):
        root.insert(i, element)


def write_vrt(target: str | Path, output: str | Path, alignment: Alignment, gcps: int | None = None,
              staging: Staging | None = None) -> Path:
    """Write a VRT over the target's own pixels with the alignment's georeference.

    A source beside the VRT (or in a folder below it) is referenced by a relative
    path, others by an absolute one: the VRT stays valid as long as the sources stay
    where they are.

    Args:
        target: a path GDAL opens (a raster, or the VRT stacking a band list).
        output: the ``.vrt`` to write.
        alignment: the georeference to give it.
        gcps: carry this many tie points as GCPs instead of a geotransform; a
            polynomial or spline model always travels as GCPs.
        staging: renames the file with the command's other outputs; default at once.
    """
    output = Path(output)
    gcps = gcp_count(alignment, gcps)
    with destination(output, staging) as tmp:
        rasterio.shutil.copy(target, tmp, driver="VRT")
        tree = ET.parse(tmp)
        _replace_georeference(tree.getroot(), _georeference(alignment, gcps))
        tree.write(tmp, encoding="unicode")
    log.info("wrote %s (references %s)", output, target)
    return output


def write_sidecar(target: str | Path, alignment: Alignment, output: str | Path | None = None,
                  staging: Staging | None = None) -> Path:
    """Give the target the alignment's georeference through a ``.aux.xml``, copying no pixel.

    Args:
        target: a single raster file (never modified).
        alignment: the georeference to give it (a geotransform).
        output: a new name for the target: a hard link to it, with its own sidecar;
            None writes the sidecar beside the target itself (the previous one kept
            as ``.aux.xml.bak``).
        staging: renames the files with the command's other outputs; default at once.

    Returns:
        The sidecar written.

    Raises:
        InvalidOption: the alignment needs GCPs.
        OutputError: the hard link cannot be made (another file system).
    """
    if alignment.warp is not None:
        raise InvalidOption(f"a sidecar carries a geotransform and the {alignment.model} model needs GCPs: "
                            "write a VRT (-o OUT.vrt) or a GeoTIFF")
    target = Path(target)
    previous = sidecar_path(target)
    root = ET.Element("PAMDataset")
    if previous.is_file():
        try:
            root = ET.parse(previous).getroot()
        except ET.ParseError as exc:
            raise RasterReadError(f"is not a readable GDAL sidecar ({exc})", previous) from None
    _replace_georeference(root, _georeference(alignment, None))
    in_place = output is None
    if in_place:
        sidecar = previous
        if previous.is_file():
            with destination(backup_path(target), staging, replace=True) as tmp:
                tmp.write_bytes(previous.read_bytes())
    else:
        sidecar = sidecar_path(output)
        with destination(output, staging) as tmp:
            try:
                os.link(target, tmp)
            except OSError as exc:
                raise OutputError(f"cannot be a hard link to {target} ({exc.strerror}); "
                                  "write a VRT (-o OUT.vrt) instead", output) from None
    with destination(sidecar, staging, replace=True if in_place else None) as tmp:
        ET.ElementTree(root).write(tmp, encoding="unicode")
    log.info("wrote %s", sidecar)
    return sidecar
