"""The result of an alignment: a plain, serialisable record that estimating produces and applying reads.

Estimating (:mod:`georef.pipeline`, :mod:`georef.gcpfit`) and applying
(:mod:`georef.write`, :mod:`georef.report`) meet only here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rasterio.crs import CRS

from georef import geometry, transforms
from georef.accuracy import Accuracy
from georef.quality import Quality


@dataclass(frozen=True)
class TiePoints:
    """Matched points, target pixels against reference map coordinates.

    Attributes:
        target_px: (N, 2) float64 raster coordinates in the full-resolution target.
        map_xy: (N, 2) float64 matched positions in the alignment's CRS.
        residual_px: (N,) float64 distance to the fitted transform, in target pixels.
        inlier: (N,) bool.
        confidence: (N,) float64 matcher confidence.
    """

    target_px: np.ndarray
    map_xy: np.ndarray
    residual_px: np.ndarray
    inlier: np.ndarray
    confidence: np.ndarray

    def to_dict(self) -> dict:
        return {k: getattr(self, k).tolist() for k in self.__dataclass_fields__}

    @classmethod
    def from_dict(cls, d: dict) -> "TiePoints":
        return cls(
            np.asarray(d["target_px"], dtype=np.float64).reshape(-1, 2),
            np.asarray(d["map_xy"], dtype=np.float64).reshape(-1, 2),
            np.asarray(d["residual_px"], dtype=np.float64),
            np.asarray(d["inlier"], dtype=bool),
            np.asarray(d["confidence"], dtype=np.float64),
        )


@dataclass(frozen=True)
class Search:
    """Where the target was looked for.

    Attributes:
        how: ``claimed georeference``, ``widened around the claimed georeference``, ``around the
            approximate centre`` or ``whole reference``.
        margin_m: margin around the target's footprint of the final match, metres.
        radius_m: radius of a search around the claimed position, metres; None where none ran.
        box: (x0, y0, x1, y1) the area searched, in the alignment's CRS; None for the whole reference.
        attempts: the margins, then the radii, tried in turn, metres.
    """

    how: str
    margin_m: float
    radius_m: float | None
    box: tuple[float, ...] | None
    attempts: tuple[float, ...]

    def edge_gap(self, transform: np.ndarray, width: int, height: int) -> float | None:
        """Smallest distance from a fitted footprint's corners to the searched box's edge (negative outside);
        None without a box."""
        if self.box is None:
            return None
        corners = geometry.apply(transform, geometry.corners(width, height))
        x0, y0, x1, y1 = self.box
        return float(min((corners[:, 0] - x0).min(), (x1 - corners[:, 0]).min(), (corners[:, 1] - y0).min(),
                         (y1 - corners[:, 1]).min()))

    def reach_m(self) -> float | None:
        """How far apart two positions this search could have answered may lie, metres; None: anywhere in the
        reference."""
        if self.box is None:
            return None
        return 2 * (self.radius_m if self.radius_m is not None else self.margin_m)

    def to_dict(self) -> dict:
        return {"how": self.how, "margin_m": self.margin_m, "radius_m": self.radius_m,
                "box": None if self.box is None else list(self.box), "attempts": list(self.attempts)}

    @classmethod
    def from_dict(cls, d: dict) -> "Search":
        return cls(d["how"], d["margin_m"], d["radius_m"], tuple(d["box"]) if d["box"] else None,
                   tuple(d["attempts"]))


@dataclass(frozen=True)
class Alignment:
    """Everything needed to apply or judge an alignment.

    Attributes:
        target, reference: input paths (reference empty for GCPs applied without one).
        matcher, model: what produced it (``gcps`` for a fit of user GCPs).
        crs_wkt: the CRS in which ``transform`` lands: the target's where it claims one, else the
            reference's.
        transform: (3, 3) target raster pixel -> reference map coordinates; for a warp
            model, its best affine (the geotransform written with its GCPs).
        width, height: target size in pixels.
        metres_per_px: ground size of a target pixel.
        tie_points: the matches and their residuals.
        quality: measures and gate verdict.
        warp: the fitted polynomial or spline of a warp model; None for a 3x3 model.
        timings: seconds per stage.
        refinement: window counts of the sub-pixel refinement; empty if it did not run.
        model_comparison: held-out RMSE, CE90 and max (px) per model, on the inliers.
        tiles: full-resolution windows per outcome (matched, no texture, ...); empty if not tiled.
        accuracy: the estimated error at the corners (see :mod:`georef.accuracy`); None where unknown.
        search: where the target was looked for; None for an alignment from GCPs.
        path: how the offset was found: ``keypoints`` (the matcher), ``correlation`` (the
            correlation-first path), or ``gcps``.
    """

    target: str
    reference: str
    matcher: str
    model: str
    crs_wkt: str
    transform: np.ndarray
    width: int
    height: int
    metres_per_px: float
    tie_points: TiePoints
    quality: Quality
    warp: transforms.Transform | None = None
    timings: dict[str, float] = field(default_factory=dict)
    refinement: dict[str, int] = field(default_factory=dict)
    model_comparison: dict[str, dict] = field(default_factory=dict)
    tiles: dict[str, int] = field(default_factory=dict)
    accuracy: Accuracy | None = None
    search: Search | None = None
    path: str = "keypoints"

    def predict(self, points: np.ndarray) -> np.ndarray:
        """Map (N, 2) target raster coordinates to reference map coordinates with the full model."""
        if self.warp is not None:
            return self.warp.apply(points)
        return geometry.apply(self.transform, points)

    @property
    def crs(self) -> CRS:
        return CRS.from_wkt(self.crs_wkt)

    @property
    def geotransform(self) -> np.ndarray:
        """(3, 3) affine part: the transform itself, or its best affine approximation."""
        if not np.allclose(self.transform[2], (0.0, 0.0, 1.0)):
            return geometry.best_affine(self.transform, self.width, self.height)
        return self.transform

    def to_dict(self) -> dict:
        return {
            "target": self.target,
            "reference": self.reference,
            "matcher": self.matcher,
            "model": self.model,
            "crs_wkt": self.crs_wkt,
            "transform": self.transform.tolist(),
            "geotransform_gdal": list(geometry.to_affine(self.geotransform).to_gdal()),
            "warp": None if self.warp is None else self.warp.to_dict(),
            "width": self.width,
            "height": self.height,
            "metres_per_px": self.metres_per_px,
            "quality": self.quality.to_dict(),
            "timings": self.timings,
            "refinement": self.refinement,
            "model_comparison": self.model_comparison,
            "tiles": self.tiles,
            "accuracy": None if self.accuracy is None else self.accuracy.to_dict(),
            "search": None if self.search is None else self.search.to_dict(),
            "path": self.path,
            "tie_points": self.tie_points.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: dict) -> "Alignment":
        return cls(
            target=d["target"],
            reference=d["reference"],
            matcher=d["matcher"],
            model=d["model"],
            crs_wkt=d["crs_wkt"],
            transform=np.asarray(d["transform"], dtype=np.float64),
            width=d["width"],
            height=d["height"],
            metres_per_px=d["metres_per_px"],
            tie_points=TiePoints.from_dict(d["tie_points"]),
            quality=Quality(**d["quality"]),
            warp=transforms.from_dict(d["warp"]) if d.get("warp") else None,
            timings=d.get("timings", {}),
            refinement=d.get("refinement", {}),
            model_comparison=d.get("model_comparison", {}),
            tiles=d.get("tiles", {}),
            accuracy=Accuracy(**d["accuracy"]) if d.get("accuracy") else None,
            search=Search.from_dict(d["search"]) if d.get("search") else None,
            path=d.get("path", "keypoints"),
        )

    @classmethod
    def load(cls, path: str | Path) -> "Alignment":
        """Read an alignment from a report (or a bare alignment) JSON file."""
        data = json.loads(Path(path).read_text())
        return cls.from_dict(data.get("alignment", data))
