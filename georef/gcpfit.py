"""Fitting a model to GCPs a user edited or chose: the alignment of ``georef fit``.

Such GCPs face no quality gate (the user chose them) but must be able to
determine the model: finite, distinct, not collinear where the model needs a
plane, and giving a transform that is finite and not singular.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
from rasterio.crs import CRS

from georef import accuracy, geometry, raster
from georef.errors import DegenerateGcps, GcpFormatError
from georef.fitting import select_model
from georef.gcps import GcpTable
from georef.quality import Placement, Quality, coverage, span
from georef.result import Alignment, TiePoints
from georef.transforms import AUTO, MODELS, MatrixTransform, TransformModel, get, polynomial_terms

log = logging.getLogger(__name__)

#: Smallest ratio of the fitted pixel's two axes: below it the transform squashes the image to a line.
_MIN_AXIS_RATIO = 1e-6
#: Smallest extent of the GCPs in the image, pixels: points closer together than any GCP is placed determine
#: no scale (two GCPs 1e-311 px apart are distinct numbers, not distinct places).
_MIN_EXTENT_PX = 1e-3


def alignment_from_gcps(table: GcpTable, target: str | Path, model: str = AUTO,
                        reference: str | Path | None = None, source: str | Path | None = None,
                        crs: str | CRS | None = None) -> Alignment:
    """An alignment fitted to the enabled GCPs of a table.

    Args:
        table: GCPs (disabled points are kept, with their residuals, but not fitted).
        target: the raster they belong to.
        model: a name of :data:`georef.transforms.MODELS`, or ``auto``.
        reference: raster whose grid a warp snaps to; default a grid of the fitted pixel size.
        source: the file the GCPs came from, named in errors (default the target).
        crs: CRS of the GCPs' map coordinates where the table names none (QGIS wrote ``.points`` files
            without one before 3.26); default the target's, else the reference's.

    Raises:
        GcpFormatError: the GCPs carry no CRS and none is given or found.
        DegenerateGcps: the enabled GCPs cannot determine the model.
    """
    source = source or target
    used = table.inlier
    pixel, map_xy = table.pixel[used], table.map_xy[used]
    _check_points(pixel, map_xy, np.flatnonzero(used) + 1, source)
    with raster.open_raster(target) as ds:
        width, height = ds.width, ds.height
        if table.crs is None:
            table = replace(table, crs=_assumed_crs(crs, ds, reference, source))
        claim = raster.georeference(ds, assume_crs=table.crs) if raster.is_georeferenced(ds) else None
    footprint = None if claim is None else raster.footprint_in(claim, width, height, table.crs, target)
    # Map y grows up where rows grow down: matrix models are fitted with map y flipped, so that a
    # similarity (which cannot reflect) describes a north-up raster.
    flip = geometry.scaling(1.0, -1.0 if _reflected(pixel, map_xy, footprint) else 1.0)
    if model == AUTO:
        # A user's few GCPs are placed with care, not noisy matches: an affine where they determine one.
        few = len(pixel) < 2 * MODELS["affine"].min_points + 4
        determined = len(pixel) >= MODELS["affine"].min_points and _spread(pixel)
        model = ("affine" if determined else "similarity") if few else select_model(pixel, geometry.apply(flip, map_xy))
    spec = get(model)
    _check_determined(spec, pixel, source)
    if spec.name == "shift":
        fitted = _shift_of(footprint, pixel, map_xy, source)
    elif spec.kind == "matrix":
        fitted = MatrixTransform(flip @ spec.fit(pixel, geometry.apply(flip, map_xy)).matrix)
    else:
        fitted = spec.fit(pixel, map_xy)
    transform = fitted.matrix if spec.kind == "matrix" else geometry.fit_affine_lstsq(pixel, map_xy)
    _check_transform(fitted, transform, width, height, source)
    unit = geometry.pixel_scale(transform)
    centre = geometry.apply(transform, [[width / 2, height / 2]])[0]
    metres_per_unit = raster.metres_per_unit(table.crs, centre)
    residual = np.linalg.norm(fitted.apply(table.pixel) - table.map_xy, axis=1) / unit
    r = residual[used]
    rmse = float(np.sqrt(np.mean(r**2)))
    # A target without a georeference claimed no position: no move is measured.
    moved = Placement(0.0, 0.0) if footprint is None else Placement.of(transform, footprint, (width, height),
                                                                        metres_per_unit)
    # Edited GCPs face no gate and no search margin: the user chose them.
    metres_per_px = unit * metres_per_unit
    # Their map positions in target pixels through the fitted grid: the frame the estimate measures in.
    measured = geometry.apply(np.linalg.inv(transform), table.map_xy)
    estimate = accuracy.estimate(table.pixel, measured, used, spec.name, (width, height), metres_per_px, "GCPs")
    quality = Quality(len(table), int(used.sum()), int(used.sum()), rmse, float(r.max()), rmse * metres_per_px,
                      float(r.max()) * metres_per_px, coverage(pixel, width, height), moved.shift_m,
                      moved.scale_change, span=span(pixel, width, height),
                      passed=True)
    return Alignment(str(target), str(reference) if reference else "", "gcps", model, table.crs.to_wkt(),
                     transform, width, height, metres_per_px,
                     TiePoints(table.pixel, table.map_xy, residual, used, table.confidence), quality,
                     warp=None if spec.kind == "matrix" else fitted, accuracy=estimate, path="gcps")


def _assumed_crs(crs: str | CRS | None, target_ds, reference: str | Path | None, source: str | Path) -> CRS:
    """The CRS of GCPs whose file names none: ``crs``, else the (open) target's, else the reference's."""
    if crs is not None:
        return CRS.from_user_input(crs)
    found, where = target_ds.crs, target_ds.name
    if found is None and reference is not None:
        with raster.open_raster(reference) as ref:
            found, where = ref.crs, reference
    if found is not None:
        log.warning("%s names no CRS: taking that of %s (%s)", source, where, found.to_string())
        return found
    raise GcpFormatError("the GCPs carry no CRS, nor do the target and the reference: give {param:gcp_crs}", source)


def _check_points(pixel: np.ndarray, map_xy: np.ndarray, ids: np.ndarray, path: str | Path) -> None:
    if len(pixel) == 0:
        raise DegenerateGcps("no GCP is enabled", path)
    finite = np.isfinite(pixel).all(axis=1) & np.isfinite(map_xy).all(axis=1)
    if not finite.all():
        raise DegenerateGcps(f"GCP {ids[~finite][0]} has a coordinate that is not a finite number", path)
    for name, points in (("pixel", pixel), ("map", map_xy)):
        _, first, counts = np.unique(points, axis=0, return_index=True, return_counts=True)
        if (counts > 1).any():
            k = first[counts > 1][0]
            again = np.flatnonzero((points == points[k]).all(axis=1))[1]
            raise DegenerateGcps(f"GCPs {ids[k]} and {ids[again]} share the {name} position "
                                 f"({points[k][0]:g}, {points[k][1]:g})", path)


def _check_determined(spec: TransformModel, pixel: np.ndarray, path: str | Path) -> None:
    """Enough points, spread enough in the image, for the model to have a unique fit."""
    n = len(pixel)
    if n < spec.min_points:
        raise DegenerateGcps(f"{n} enabled GCPs; the {spec.name} model needs at least {spec.min_points}", path)
    extent = float(np.ptp(pixel, axis=0).max())
    if spec.name != "shift" and extent < _MIN_EXTENT_PX:
        raise DegenerateGcps(f"the enabled GCPs lie within {extent:.3g} px of one another in the image; the "
                             f"{spec.name} model needs them apart", path)
    if spec.name in ("shift", "similarity"):
        return  # distinct points determine them
    centred = pixel - pixel.mean(axis=0)
    if not _spread(pixel):
        raise DegenerateGcps(f"the enabled GCPs lie on one line; the {spec.name} model needs them spread over "
                             "the image (or use the similarity model)", path)
    if spec.kind == "polynomial":
        scale = np.abs(centred).max() or 1.0
        terms = polynomial_terms(centred / scale, spec.order)
        if np.linalg.matrix_rank(terms) < terms.shape[1]:
            raise DegenerateGcps(f"the enabled GCPs do not determine a polynomial of order {spec.order} (they lie "
                                 "on too few lines); use a lower order", path)


def _spread(pixel: np.ndarray) -> bool:
    """The points span a plane (not all on one line)."""
    spread = np.linalg.svd(pixel - pixel.mean(axis=0), compute_uv=False)
    return bool(spread[-1] > 1e-9 * max(spread[0], 1e-12))


def _check_transform(fitted, transform: np.ndarray, width: int, height: int, path: str | Path) -> None:
    grid = geometry.grid_points(width, height, 5)
    if not (np.isfinite(transform).all() and np.isfinite(fitted.apply(grid)).all()):
        raise DegenerateGcps("the GCPs give a transform that is not finite", path)
    if not geometry.pixel_scale(transform) > 0:  # a pixel too small for its area to be a float
        raise DegenerateGcps("the GCPs give a pixel size of 0", path)
    axes = np.linalg.svd(transform[:2, :2], compute_uv=False)
    if axes[-1] <= _MIN_AXIS_RATIO * axes[0]:
        raise DegenerateGcps("the GCPs give a singular transform (the image would collapse to a line or a point)",
                             path)


def _reflected(pixel: np.ndarray, map_xy: np.ndarray, footprint: np.ndarray | None) -> bool:
    """Whether pixel -> map coordinates mirror the image: from an affine fit of the GCPs where they
    determine one, else from the target's own georeference, else as for a north-up raster."""
    if len(pixel) >= 3 and np.linalg.svd(pixel - pixel.mean(axis=0), compute_uv=False)[-1] > 1e-9:
        det = np.linalg.det(geometry.fit_affine_lstsq(pixel, map_xy)[:2, :2])
        if det != 0 and np.isfinite(det):
            return bool(det < 0)
    if footprint is not None:
        return bool(np.linalg.det(footprint[:2, :2]) < 0)
    return True


def _shift_of(footprint: np.ndarray | None, pixel: np.ndarray, map_xy: np.ndarray,
              path: str | Path) -> MatrixTransform:
    """The target's own pixel size and orientation, moved by the mean offset of the GCPs."""
    if footprint is None:
        raise DegenerateGcps("the shift model keeps the target's own pixel size, and the target has no "
                             "georeference: use the similarity model", path)
    matrix = footprint.copy()
    matrix[:2, 2] += (map_xy - geometry.apply(footprint, pixel)).mean(axis=0)
    return MatrixTransform(matrix)
