"""Ground control points: export to GIS formats, read back, and apply (re-fit) them.

Formats by extension: ``.shp``, ``.gpkg``, ``.geojson`` (point layers in the
reference CRS), ``.csv`` (a ``#CRS: <WKT>`` first line, then a header), and
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
from georef.align import Alignment, TiePoints
from georef.errors import GeorefError, RasterReadError

VECTOR_FORMATS = {".shp": "ESRI Shapefile", ".gpkg": "GPKG", ".geojson": "GeoJSON"}
FORMATS = (*VECTOR_FORMATS, ".csv", ".points")
#: Attribute names, short enough for a shapefile.
COLUMNS = ("id", "px", "py", "mx", "my", "dx_px", "dy_px", "res_px", "dx_m", "dy_m", "res_m", "inlier", "conf")


class GcpFormatError(GeorefError, ValueError):
    """A GCP file cannot be read or written in the format its extension names."""


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
    metres_per_unit = alignment.metres_per_px / float(np.sqrt(abs(np.linalg.det(linear))))
    return GcpTable(tp.target_px, tp.map_xy, d_px, d_map * metres_per_unit, tp.inlier, tp.confidence, alignment.crs)


def from_geotiff(path: str | Path) -> GcpTable:
    """The GCPs embedded in a GeoTIFF (residuals unknown: zero)."""
    from georef.raster import open_raster

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
    try:
        if suffix == ".json":
            return from_alignment(Alignment.load(path))
        if suffix in (".tif", ".tiff"):
            return from_geotiff(path)
        if suffix == ".points":
            return _read_points(path)
        if suffix == ".csv":
            return _read_csv(path)
        if suffix in VECTOR_FORMATS:
            return _read_vector(path)
    except (KeyError, ValueError, json.JSONDecodeError) as exc:
        if isinstance(exc, GeorefError):
            raise
        raise GcpFormatError(f"not a valid {suffix} GCP file ({exc})", path) from None
    raise GcpFormatError(f"unknown GCP format {suffix!r}; use one of {', '.join(FORMATS)}", path)


def write(table: GcpTable, path: str | Path) -> Path:
    """Write GCPs in the format the extension names, atomically."""
    from georef.write import atomic_path

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise GcpFormatError(f"unknown GCP format {suffix!r}; use one of {', '.join(FORMATS)}", path)
    with atomic_path(path) as tmp:
        if suffix == ".points":
            tmp.write_text(_points_text(table))
        elif suffix == ".csv":
            tmp.write_text(_csv_text(table))
        else:
            _write_vector(table, tmp, VECTOR_FORMATS[suffix])
    if suffix == ".shp":  # the shapefile's sidecars follow the renamed .shp
        for part in tmp.parent.glob(tmp.stem + ".*"):
            part.rename(path.with_suffix(part.suffix))
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
    layer = {"layer": "gcps"} if driver == "GPKG" else {}  # the temporary file name is no layer name
    frame.to_file(path, driver=driver, engine="pyogrio", **layer)


def _read_vector(path: Path) -> GcpTable:
    import geopandas as gpd

    frame = gpd.read_file(path, engine="pyogrio")
    return _from_columns({k: frame[k].to_numpy() for k in COLUMNS}, frame.crs and CRS.from_user_input(frame.crs))


def alignment_from_gcps(table: GcpTable, target: str | Path, model: str, reference: str | None = None) -> Alignment:
    """An alignment fitted to the enabled GCPs of a table: the workflow of a user who edited points in QGIS.

    Args:
        table: GCPs (disabled points are kept but not fitted).
        target: the raster they belong to.
        model: any 3x3 or warp model name, or ``auto``.
        reference: raster whose grid a warp snaps to; default a grid of the fitted pixel size.
    """
    from georef.fitting import AUTO, MIN_POINTS, MODELS, least_squares, select_model
    from georef.models import WARP_MODELS, fit_model, min_points
    from georef.quality import Quality, coverage
    from georef.raster import latitude, metres_per_unit, open_raster

    if table.crs is None:
        raise GcpFormatError("the GCPs carry no CRS", target)
    used = table.inlier
    if model == AUTO:
        model = select_model(table.pixel[used], table.map_xy[used])
    need = MIN_POINTS[model] if model in MODELS else min_points(model)
    if used.sum() < max(need, 3):
        raise GcpFormatError(f"{int(used.sum())} enabled GCPs; the {model} model needs {max(need, 3)}", target)
    if model in WARP_MODELS:
        predict = fit_model(model, table.pixel[used], table.map_xy[used]).apply
        transform = geometry.fit_affine_lstsq(table.pixel[used], table.map_xy[used])
    else:
        transform = least_squares(model, table.pixel[used], table.map_xy[used])
        predict = lambda p: geometry.apply(transform, p)  # noqa: E731
    with open_raster(target) as ds:
        width, height = ds.width, ds.height
    unit = float(np.sqrt(abs(np.linalg.det(transform[:2, :2]))))
    centre = geometry.apply(transform, [[width / 2, height / 2]])[0]
    metres_per_px = unit * metres_per_unit(table.crs, latitude(table.crs, centre))
    residual = np.linalg.norm(predict(table.pixel) - table.map_xy, axis=1) / unit
    r = residual[used]
    rmse = float(np.sqrt(np.mean(r**2)))
    # Edited GCPs face no gate and no search margin: the user chose them.
    quality = Quality(len(table), int(used.sum()), int(used.sum()), rmse, float(r.max()), rmse * metres_per_px,
                      float(r.max()) * metres_per_px, coverage(table.pixel[used], width, height), 0.0, 0.0, passed=True)
    tie_points = TiePoints(table.pixel, table.map_xy, residual, used, table.confidence)
    return Alignment(str(target), str(reference) if reference else "", "gcps", model, table.crs.to_wkt(),
                     transform, width, height, metres_per_px, tie_points, quality)


def export(source: str | Path, destination: str | Path, inliers_only: bool = False, overwrite: bool = False) -> GcpTable:
    """Read the GCPs of ``source`` and write them to ``destination``."""
    from georef.write import refuse_existing

    refuse_existing(destination, overwrite=overwrite)
    table = read(source)
    if inliers_only:
        keep = table.inlier
        table = GcpTable(table.pixel[keep], table.map_xy[keep], table.residual_px[keep], table.residual_m[keep],
                         table.inlier[keep], table.confidence[keep], table.crs)
    write(table, destination)
    return table


def fit_file(
    gcp_file: str | Path,
    target: str | Path,
    output: str | Path,
    model: str = "affine",
    *,
    reference: str | Path | None = None,
    report: str | Path | None = None,
    gcps: int | None = None,
    warp: bool = False,
    resampling: str = "cubic",
    target_res: float | None = None,
    overwrite: bool = False,
) -> Alignment:
    """Fit a model to a GCP file and write the target with it (pixels kept, or warped)."""
    from rasterio.enums import Resampling

    from georef.report import write_report
    from georef.write import refuse_existing, write_aligned, write_warped

    refuse_existing(output, report, overwrite=overwrite)
    alignment = alignment_from_gcps(read(gcp_file), target, model, reference)
    if warp:
        write_warped(target, output, alignment, Resampling[resampling], target_res)
    else:
        write_aligned(target, output, alignment, gcps=gcps)
    if report is not None:
        write_report(report, alignment, output=output)
    return alignment
