"""Plane geometry shared by the whole pipeline.

Transforms are 3x3 float64 matrices acting on column vectors ``(x, y, 1)``.
Pixel coordinates follow the raster (GDAL) convention: the upper-left corner of
pixel (col=0, row=0) is (0, 0) and its centre is (0.5, 0.5). Matchers report
OpenCV/kornia *index* coordinates, where the centre of that pixel is (0, 0);
:func:`index_to_raster` converts between the two.
"""

from __future__ import annotations

import math

import numpy as np
from affine import Affine

#: Offset from index coordinates (pixel centre at 0) to raster coordinates (pixel corner at 0).
PIXEL_CENTRE = 0.5


def to_matrix(transform: Affine) -> np.ndarray:
    """Return a rasterio/affine ``Affine`` as a (3, 3) float64 matrix."""
    return np.array(transform, dtype=np.float64).reshape(3, 3)


def to_affine(matrix: np.ndarray) -> Affine:
    """Return a (3, 3) matrix with last row (0, 0, 1) as an ``Affine``.

    Raises:
        ValueError: if the matrix is projective.
    """
    m = np.asarray(matrix, dtype=np.float64)
    if not np.allclose(m[2], (0.0, 0.0, 1.0), atol=1e-12):
        raise ValueError(f"matrix is projective (last row {m[2].tolist()}), not affine")
    return Affine(*m[:2].ravel())


def apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Map points through a 3x3 transform (affine or projective).

    Args:
        matrix: (3, 3) transform.
        points: (N, 2) x/y coordinates.

    Returns:
        (N, 2) float64 mapped coordinates.
    """
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    hom = pts @ matrix[:2, :2].T + matrix[:2, 2]
    if matrix[2, 0] == 0 and matrix[2, 1] == 0 and matrix[2, 2] == 1:  # affine (allclose costs more than the rest)
        return hom
    w = pts @ matrix[2, :2] + matrix[2, 2]
    return hom / w[:, None]


def translation(tx: float, ty: float) -> np.ndarray:
    """Return the (3, 3) matrix translating by (tx, ty)."""
    return np.array([[1.0, 0.0, tx], [0.0, 1.0, ty], [0.0, 0.0, 1.0]])


def scaling(sx: float, sy: float | None = None) -> np.ndarray:
    """Return the (3, 3) matrix scaling x by sx and y by sy (default sx)."""
    return np.diag([sx, sx if sy is None else sy, 1.0])


def similarity_about(centre: tuple[float, float], angle_deg: float, scale: float) -> np.ndarray:
    """Rotation by ``angle_deg`` (counter-clockwise on screen axes) and scaling about ``centre``."""
    a = math.radians(angle_deg)
    c, s = scale * math.cos(a), scale * math.sin(a)
    rot = np.array([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]])
    return translation(*centre) @ rot @ translation(-centre[0], -centre[1])


def index_to_raster(points: np.ndarray) -> np.ndarray:
    """Convert (N, 2) index coordinates (pixel centre at 0) to raster coordinates (corner at 0)."""
    return np.asarray(points, dtype=np.float64) + PIXEL_CENTRE


def corners(width: float, height: float) -> np.ndarray:
    """Return the (4, 2) raster coordinates of an image's outer corners, clockwise from upper-left."""
    return np.array([[0.0, 0.0], [width, 0.0], [width, height], [0.0, height]])


def outline(width: float, height: float, per_edge: int = 32) -> np.ndarray:
    """(4 * per_edge, 2) points around a ``width`` x ``height`` raster's edge, clockwise from the top-left
    corner: a ring that a polygon or a warped footprint can follow."""
    full = np.linspace(0, 1, per_edge + 1)
    forward, back = full[:-1], full[::-1][:-1]
    zeros = np.zeros(per_edge)
    return np.vstack([np.column_stack([forward * width, zeros]), np.column_stack([zeros + width, forward * height]),
                      np.column_stack([back * width, zeros + height]), np.column_stack([zeros, back * height])])


def grid_points(width: float, height: float, n: int = 10) -> np.ndarray:
    """Return (n*n, 2) points at the centres of an n x n grid over an image."""
    xs = (np.arange(n) + 0.5) * width / n
    ys = (np.arange(n) + 0.5) * height / n
    gx, gy = np.meshgrid(xs, ys)
    return np.column_stack([gx.ravel(), gy.ravel()])


def fit_affine_lstsq(src: np.ndarray, dst: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Least-squares affine mapping ``src`` onto ``dst``.

    Args:
        src: (N, 2) source points, N >= 3 and not collinear.
        dst: (N, 2) destination points.
        weights: optional (N,) non-negative weights.

    Returns:
        (3, 3) affine matrix.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    design = np.column_stack([src, np.ones(len(src))])
    if weights is not None:
        w = np.sqrt(np.asarray(weights, dtype=np.float64))[:, None]
        design, dst = design * w, dst * w
    coef, *_ = np.linalg.lstsq(design, dst, rcond=None)
    m = np.eye(3)
    m[:2] = coef.T
    return m


def best_affine(matrix: np.ndarray, width: float, height: float, n: int = 20) -> np.ndarray:
    """Affine that best approximates a (possibly projective) transform over an image, in least squares."""
    pts = grid_points(width, height, n)
    return fit_affine_lstsq(pts, apply(matrix, pts))


def pixel_scale(matrix: np.ndarray) -> float:
    """Side of the square a unit pixel maps to under a (3, 3) transform's linear part: sqrt|det|."""
    return float(np.sqrt(abs(np.linalg.det(matrix[:2, :2]))))


def mean_corner_distance(a: np.ndarray, b: np.ndarray, width: float, height: float) -> float:
    """Mean distance between the images of an image's four corners under two transforms."""
    c = corners(width, height)
    return float(np.linalg.norm(apply(a, c) - apply(b, c), axis=1).mean())


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
