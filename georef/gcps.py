"""Ground control points with their residuals: GIS formats, read and written.

Formats by extension: ``.shp``, ``.gpkg``, ``.geojson`` (point layers in the
alignment's CRS), ``.csv`` (a ``#CRS: <WKT>`` first line, then a header), and
``.points``, the QGIS Georeferencer format: an optional ``#CRS: <WKT>`` line,
then ``mapX,mapY,sourceX,sourceY,enable,dX,dY,residual``, where the source
coordinates of an un-georeferenced raster are pixel column and negative row.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rasterio.crs import CRS

from georef import geometry
from georef.errors import GcpFormatError, GeorefError, RasterReadError, one_line
from georef.files import Staging
from georef.raster import open_raster
from georef.result import Alignment

VECTOR_FORMATS = {".shp": "ESRI Shapefile", ".gpkg": "GPKG", ".geojson": "GeoJSON"}
FORMATS = (*VECTOR_FORMATS, ".csv", ".points")
#: Attribute names, short enough for a shapefile.
COLUMNS = ("id", "px", "py", "mx", "my", "dx_px", "dy_px", "res_px", "dx_m", "dy_m", "res_m", "inlier", "conf")


@dataclass
class GcpTable:
    """GCPs with their residuals.

    Attributes:
        pixel: (N, 2) target raster coordinates (column, row).
        map_xy: (N, 2) positions in ``crs``.
        residual_px: (N, 2) model minus measured position, in target pixels.
        residual_m: (N, 2) the same in metres.
        inlier: (N,) bool; disabled points of a .points file are False.
        confidence: (N,) matcher confidence (1 for points from other sources).
        crs: CRS of the map positions.
    """

    pixel: np.ndarray
    map_xy: np.ndarray
    residual_px: np.ndarray
    residual_m: np.ndarray
    inlier: np.ndarray
    confidence: np.ndarray
    crs: CRS | None

    def __len__(self) -> int:
        return len(self.pixel)

    def subset(self, keep: np.ndarray) -> "GcpTable":
        """The GCPs where ``keep`` (N,) is True."""
        return GcpTable(self.pixel[keep], self.map_xy[keep], self.residual_px[keep], self.residual_m[keep],
                        self.inlier[keep], self.confidence[keep], self.crs)

    def columns(self) -> dict[str, np.ndarray]:
        return {
            "id": np.arange(1, len(self) + 1),
            "px": self.pixel[:, 0], "py": self.pixel[:, 1],
            "mx": self.map_xy[:, 0], "my": self.map_xy[:, 1],
            "dx_px": self.residual_px[:, 0], "dy_px": self.residual_px[:, 1],
            "res_px": np.linalg.norm(self.residual_px, axis=1),
            "dx_m": self.residual_m[:, 0], "dy_m": self.residual_m[:, 1],
            "res_m": np.linalg.norm(self.residual_m, axis=1),
            "inlier": self.inlier.astype(int), "conf": self.confidence,
        }


def from_alignment(alignment: Alignment) -> GcpTable:
    """Every tie point of an alignment, with residual vectors against its model."""
    tp = alignment.tie_points
    predicted = alignment.predict(tp.target_px)
    d_map = predicted - tp.map_xy
    linear = alignment.geotransform[:2, :2]
    d_px = d_map @ np.linalg.inv(linear).T
    metres_per_unit = alignment.metres_per_px / geometry.pixel_scale(alignment.geotransform)
    return GcpTable(tp.target_px, tp.map_xy, d_px, d_map * metres_per_unit, tp.inlier, tp.confidence, alignment.crs)


def from_geotiff(path: str | Path) -> GcpTable:
    """The GCPs embedded in a GeoTIFF (residuals unknown: zero)."""
    with open_raster(path) as ds:
        gcps, crs = ds.gcps
    if not gcps:
        raise GcpFormatError("has no embedded GCPs; export the alignment's report instead", path)
    pixel = np.array([[g.col, g.row] for g in gcps], dtype=np.float64)
    map_xy = np.array([[g.x, g.y] for g in gcps], dtype=np.float64)
    n = len(gcps)
    return GcpTable(pixel, map_xy, np.zeros((n, 2)), np.zeros((n, 2)), np.ones(n, bool), np.ones(n), crs)


def read(path: str | Path) -> GcpTable:
    """Read GCPs from a report (.json), a GeoTIFF with GCPs, or any export format."""
    path = Path(path)
    if not path.exists():
        raise RasterReadError("no such file", path)
    suffix = path.suffix.lower()
    readers = {".json": _read_report, ".tif": from_geotiff, ".tiff": from_geotiff, ".points": _read_points,
               ".csv": _read_csv, **{s: _read_vector for s in VECTOR_FORMATS}}
    if suffix not in readers:
        raise GcpFormatError(f"unknown GCP format {suffix!r}; use one of {', '.join(FORMATS)}", path)
    try:
        return readers[suffix](path)
    except GeorefError:
        raise
    except (KeyError, ValueError, TypeError, AttributeError, IndexError, UnicodeDecodeError, OSError) as exc:
        detail = one_line(exc, 120) or type(exc).__name__
        raise GcpFormatError(f"not a valid {suffix} GCP file ({detail})", path) from None


def _read_report(path: Path) -> GcpTable:
    data = json.loads(path.read_text())
    if not isinstance(data, dict):
        raise GcpFormatError("is not a georef report (no JSON object)", path)
    if "alignment" in data and data["alignment"] is None:
        raise GcpFormatError("holds no tie points: that run found no alignment", path)
    return from_alignment(Alignment.from_dict(data.get("alignment", data)))


#: Files a shapefile consists of, besides the ``.shp``.
SHAPEFILE_PARTS = (".shx", ".dbf", ".prj", ".cpg")


def destinations(path: str | Path) -> list[Path]:
    """Every file :func:`write` writes for ``path`` (a shapefile is several)."""
    path = Path(path)
    if path.suffix.lower() == ".shp":
        return [path, *(path.with_suffix(s) for s in SHAPEFILE_PARTS)]
    return [path]


def write(table: GcpTable, path: str | Path, staging: Staging | None = None) -> Path:
    """Write GCPs in the format the extension names, atomically.

    Args:
        table: the GCPs.
        path: the file; its extension names the format (:data:`FORMATS`).
        staging: renames the file with the command's other outputs; default at once.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise GcpFormatError(f"unknown GCP format {suffix!r}; use one of {', '.join(FORMATS)}", path)
    if suffix == ".geojson" and table.crs is not None and table.crs.to_epsg() is None:
        # GDAL writes such a CRS as none, and GeoJSON without one is read back as WGS 84.
        raise GcpFormatError("GeoJSON names a CRS by its EPSG code and the GCPs' CRS has none: write .gpkg, .shp, "
                             ".csv or .points", path)
    if staging is None:
        with Staging(overwrite=True) as own:
            write(table, path, own)
            own.commit()
        return path
    tmp = staging.path(path)
    if suffix == ".points":
        tmp.write_text(_points_text(table))
    elif suffix == ".csv":
        tmp.write_text(_csv_text(table))
    else:
        _write_vector(table, tmp, VECTOR_FORMATS[suffix])
    for part in tmp.parent.glob(tmp.stem + ".*"):  # a shapefile's sidecars follow the .shp
        if part != tmp:
            staging.adopt(part, path.with_suffix(part.suffix))
    return path


def _crs_line(crs: CRS | None) -> str:
    return f"#CRS: {crs.to_wkt()}\n" if crs else ""


def _parse_crs_line(lines: list[str]) -> tuple[CRS | None, list[str]]:
    crs = None
    rest = []
    for line in lines:
        if line.startswith("#CRS:"):
            crs = CRS.from_user_input(line[5:].strip())
        elif line.strip() and not line.startswith("#"):
            rest.append(line)
    return crs, rest


def _points_text(table: GcpTable) -> str:
    out = io.StringIO()
    out.write(_crs_line(table.crs))
    out.write("mapX,mapY,sourceX,sourceY,enable,dX,dY,residual\n")
    c = table.columns()
    for i in range(len(table)):
        values = [c["mx"][i], c["my"][i], c["px"][i], -c["py"][i], int(table.inlier[i]),
                  c["dx_px"][i], c["dy_px"][i], c["res_px"][i]]
        out.write(",".join(repr(float(v)) if k != 4 else str(v) for k, v in enumerate(values)) + "\n")
    return out.getvalue()


def _read_points(path: Path) -> GcpTable:
    """QGIS rules: optional #CRS line, comma or tab separated, at least 4 columns, optional header."""
    crs, lines = _parse_crs_line(path.read_text().splitlines())
    rows = []
    for n, line in enumerate(lines):
        cells = [c.strip() for c in (line.split("\t") if "\t" in line else line.split(","))]
        if n == 0 and cells[0].lower() == "mapx":
            continue
        if len(cells) < 4:
            raise GcpFormatError(f"line {line!r} has fewer than 4 columns", path)
        rows.append([float(v) for v in cells[:4]] + [float(cells[4]) if len(cells) > 4 else 1.0])
    if not rows:
        raise GcpFormatError("holds no GCP", path)
    a = np.array(rows)
    n = len(a)
    return GcpTable(np.column_stack([a[:, 2], -a[:, 3]]), a[:, :2], np.zeros((n, 2)), np.zeros((n, 2)),
                    a[:, 4] != 0, np.ones(n), crs)


def _csv_text(table: GcpTable) -> str:
    out = io.StringIO()
    out.write(_crs_line(table.crs))
    writer = csv.writer(out, lineterminator="\n")
    c = table.columns()
    writer.writerow(COLUMNS)
    for i in range(len(table)):
        writer.writerow([repr(float(c[k][i])) if k not in ("id", "inlier") else int(c[k][i]) for k in COLUMNS])
    return out.getvalue()


def _from_columns(c: dict, crs: CRS | None) -> GcpTable:
    f = lambda k: np.asarray(c[k], dtype=np.float64)  # noqa: E731
    return GcpTable(np.column_stack([f("px"), f("py")]), np.column_stack([f("mx"), f("my")]),
                    np.column_stack([f("dx_px"), f("dy_px")]), np.column_stack([f("dx_m"), f("dy_m")]),
                    f("inlier") != 0, f("conf"), crs)


def _read_csv(path: Path) -> GcpTable:
    crs, lines = _parse_crs_line(path.read_text().splitlines())
    rows = list(csv.DictReader(lines))
    if not rows:
        raise GcpFormatError("holds no GCP", path)
    return _from_columns({k: [r[k] for r in rows] for k in COLUMNS}, crs)


def _write_vector(table: GcpTable, path: Path, driver: str) -> None:
    import geopandas as gpd

    frame = gpd.GeoDataFrame(table.columns(), geometry=gpd.points_from_xy(table.map_xy[:, 0], table.map_xy[:, 1]),
                             crs=table.crs)
    layer = {"layer": "gcps"} if driver != "ESRI Shapefile" else {}  # the temporary file name is no layer name
    frame.to_file(path, driver=driver, engine="pyogrio", **layer)


def _read_vector(path: Path) -> GcpTable:
    import geopandas as gpd
    from pyogrio.errors import DataLayerError, DataSourceError

    try:
        frame = gpd.read_file(path, engine="pyogrio")
    except (DataSourceError, DataLayerError) as exc:  # not a vector file, or no readable layer: the user's file
        raise GcpFormatError(f"cannot be read as a point layer ({one_line(exc, 120)})", path) from None
    return _from_columns({k: frame[k].to_numpy() for k in COLUMNS}, frame.crs and CRS.from_user_input(frame.crs))
