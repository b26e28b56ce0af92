"""Transform models from target pixels to map coordinates, in one registry.

:data:`MODELS` names every model once, with its kind, the fewest points that
determine it, and whether a geotransform carries it exactly: ``shift``,
``similarity``, ``affine`` and ``homography`` are 3x3 matrices; ``poly1`` to
``poly3`` and ``tps`` (thin-plate spline) are warps that travel as GCPs, fitted
as GDAL's GCP transformers (``MAX_GCP_ORDER``, ``SRC_METHOD=GCP_TPS``) fit them, so
that the residuals reported here describe the warp GDAL applies. A fitted model
is a :class:`Transform`: it maps points and serialises to a plain dict, and is
never refitted to be evaluated.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from georef import geometry
from georef.errors import MatchingError

#: Chooses a similarity or an affine from the tie points (see :func:`georef.fitting.select_model`).
AUTO = "auto"


class Transform(Protocol):
    """A fitted model: (N, 2) source points -> (N, 2) destination points."""

    def apply(self, points: np.ndarray) -> np.ndarray: ...

    def to_dict(self) -> dict: ...


@dataclass(frozen=True)
class TransformModel:
    """One model of the registry.

    Attributes:
        name: e.g. ``"affine"``.
        kind: ``"matrix"`` (a 3x3 transform), ``"polynomial"`` or ``"spline"``.
        min_points: fewest tie points that determine it.
        geotransform: a geotransform carries it exactly (else GCPs do).
        order: polynomial order (GDAL's ``MAX_GCP_ORDER``); None for others.
    """

    name: str
    kind: str
    min_points: int
    geotransform: bool
    order: int | None = None

    def fit(self, src: np.ndarray, dst: np.ndarray) -> Transform:
        """Least-squares fit (interpolating for the spline) mapping ``src`` onto ``dst``.

        Raises:
            MatchingError: fewer points than the model needs.
        """
        if len(src) < self.min_points:
            raise MatchingError(f"only {len(src)} tie points; the {self.name} model needs at least {self.min_points}")
        if self.kind == "matrix":
            return MatrixTransform(least_squares(self.name, src, dst))
        if self.kind == "spline":
            return ThinPlateSpline.fit(src, dst)
        return Polynomial.fit(src, dst, self.order)


def _polynomial(order: int) -> TransformModel:
    return TransformModel(f"poly{order}", "polynomial", (order + 1) * (order + 2) // 2, False, order)


MODELS: dict[str, TransformModel] = {m.name: m for m in (
    TransformModel("shift", "matrix", 1, True),
    TransformModel("similarity", "matrix", 2, True),
    TransformModel("affine", "matrix", 3, True),
    TransformModel("homography", "matrix", 4, False),
    _polynomial(1), _polynomial(2), _polynomial(3),
    TransformModel("tps", "spline", 3, False),
)}
#: 3x3 models, from the most to the least constrained.
MATRIX_MODELS: tuple[str, ...] = tuple(n for n, m in MODELS.items() if m.kind == "matrix")
#: Models fitted to the pooled inlier tie points and carried by GCPs.
WARP_MODELS: tuple[str, ...] = tuple(n for n, m in MODELS.items() if m.kind != "matrix")
#: What ``model`` options accept.
MODEL_NAMES: tuple[str, ...] = (AUTO, *MODELS)


def get(name: str) -> TransformModel:
    """The registry entry of a model.

    Raises:
        ValueError: unknown name.
    """
    try:
        return MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; choose from {', '.join(MODEL_NAMES)}") from None


def least_squares(model: str, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares (3, 3) transform of a matrix model mapping ``src`` onto ``dst``."""
    if model == "shift":
        return geometry.translation(*(dst - src).mean(axis=0))
    if model == "similarity":
        return _similarity_least_squares(src, dst)
    if model == "affine":
        return geometry.fit_affine_lstsq(src, dst)
    import cv2

    h, _ = cv2.findHomography(src, dst, 0)
    if h is None:
        raise MatchingError("degenerate tie points: no homography fits them")
    return h


def _similarity_least_squares(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (Umeyama, no reflection)."""
    ms, md = src.mean(axis=0), dst.mean(axis=0)
    s, d = src - ms, dst - md
    a = (s * d).sum()  # sum of x*x' + y*y'
    b = (s[:, 0] * d[:, 1] - s[:, 1] * d[:, 0]).sum()
    denom = max((s**2).sum(), 1e-12)
    ca, sa = a / denom, b / denom
    m = np.array([[ca, -sa, 0.0], [sa, ca, 0.0], [0.0, 0.0, 1.0]])
    m[:2, 2] = md - m[:2, :2] @ ms
    return m


@dataclass(frozen=True)
class MatrixTransform:
    """A 3x3 transform (affine or projective).

    Attributes:
        matrix: (3, 3) float64.
    """

    matrix: np.ndarray

    def apply(self, points: np.ndarray) -> np.ndarray:
        return geometry.apply(self.matrix, points)

    def to_dict(self) -> dict:
        return {"kind": "matrix", "matrix": np.asarray(self.matrix).tolist()}


def polynomial_terms(points: np.ndarray, order: int) -> np.ndarray:
    """(N, terms) monomials of a 2-D polynomial of ``order``: the design matrix of :class:`Polynomial`."""
    x, y = points[:, 0], points[:, 1]
    cols = [x**i * y**j for n in range(order + 1) for i in range(n, -1, -1) for j in [n - i]]
    return np.column_stack(cols)


@dataclass(frozen=True)
class Polynomial:
    """A 2-D polynomial of order 1-3, fitted in normalised coordinates for conditioning.

    Attributes:
        order: 1 to 3.
        coef: (terms, 2) coefficients for x and y.
        centre: (2,) mean of the source points.
        scale: their spread, so normalised coordinates are about unit size.
    """

    order: int
    coef: np.ndarray
    centre: np.ndarray
    scale: float

    @classmethod
    def fit(cls, src: np.ndarray, dst: np.ndarray, order: int) -> "Polynomial":
        centre = src.mean(axis=0)
        scale = float(np.abs(src - centre).max()) or 1.0
        design = polynomial_terms((src - centre) / scale, order)
        coef, *_ = np.linalg.lstsq(design, dst, rcond=None)
        return cls(order, coef, centre, scale)

    def apply(self, points: np.ndarray) -> np.ndarray:
        """(N, 2) source -> (N, 2) destination."""
        return polynomial_terms((np.asarray(points, np.float64) - self.centre) / self.scale, self.order) @ self.coef

    def to_dict(self) -> dict:
        return {"kind": "polynomial", "order": self.order, "coef": self.coef.tolist(),
                "centre": self.centre.tolist(), "scale": self.scale}


@dataclass(frozen=True)
class ThinPlateSpline:
    """An interpolating thin-plate spline (exact at its control points, like GDAL's GCP_TPS).

    Attributes:
        control: (N, 2) normalised control points.
        weights: (N + 3, 2) kernel weights, then the affine part.
        centre, scale: normalisation of the source coordinates.
    """

    control: np.ndarray
    weights: np.ndarray
    centre: np.ndarray
    scale: float

    @staticmethod
    def _kernel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """(N, M) r^2 log r between the points ``a`` (N, 2) and ``b`` (M, 2); 0 where they coincide."""
        # Per coordinate: a sum over a trailing axis of length 2 costs four times as much.
        dx = a[:, 0, None] - b[None, :, 0]
        dy = a[:, 1, None] - b[None, :, 1]
        r2 = dx * dx + dy * dy
        return 0.5 * r2 * np.log(np.maximum(r2, np.finfo(np.float64).tiny))

    @classmethod
    def fit(cls, src: np.ndarray, dst: np.ndarray) -> "ThinPlateSpline":
        centre = src.mean(axis=0)
        scale = float(np.abs(src - centre).max()) or 1.0
        p = (src - centre) / scale
        n = len(p)
        affine = np.column_stack([np.ones(n), p])
        system = np.zeros((n + 3, n + 3))
        system[:n, :n] = cls._kernel(p, p)
        system[:n, n:] = affine
        system[n:, :n] = affine.T
        rhs = np.vstack([dst, np.zeros((3, 2))])
        try:
            weights = np.linalg.solve(system, rhs)
        except np.linalg.LinAlgError:  # repeated or collinear points: the least-squares solution
            weights = np.linalg.lstsq(system, rhs, rcond=None)[0]
        return cls(p, weights, centre, scale)

    def apply(self, points: np.ndarray) -> np.ndarray:
        p = (np.asarray(points, np.float64) - self.centre) / self.scale
        n = len(self.control)
        return self._kernel(p, self.control) @ self.weights[:n] + np.column_stack([np.ones(len(p)), p]) @ self.weights[n:]

    def to_dict(self) -> dict:
        return {"kind": "spline", "control": self.control.tolist(), "weights": self.weights.tolist(),
                "centre": self.centre.tolist(), "scale": self.scale}


def from_dict(data: dict) -> Transform:
    """A fitted transform from its :meth:`Transform.to_dict`."""
    def array(key: str) -> np.ndarray:
        return np.asarray(data[key], dtype=np.float64)

    if data["kind"] == "matrix":
        return MatrixTransform(array("matrix").reshape(3, 3))
    if data["kind"] == "polynomial":
        return Polynomial(int(data["order"]), array("coef"), array("centre"), float(data["scale"]))
    if data["kind"] == "spline":
        return ThinPlateSpline(array("control").reshape(-1, 2), array("weights"), array("centre"), float(data["scale"]))
    raise ValueError(f"unknown transform kind {data['kind']!r}")
