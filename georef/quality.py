"""Quality measures of a fitted alignment and the gate that accepts or refuses it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np


@dataclass(frozen=True)
class QualityGate:
    """Thresholds a result must meet to be written.

    Attributes:
        min_inliers: fewest inlier tie points.
        max_rmse_px: largest inlier residual RMSE, in target pixels.
        min_coverage: smallest share of a 4x4 grid over the target holding inliers.
    """

    min_inliers: int = 12
    max_rmse_px: float = 1.5
    min_coverage: float = 0.25


@dataclass
class Quality:
    """How well the tie points support the transform.

    Residuals are those of the inliers; pixels are target pixels.
    """

    matches: int
    inliers: int
    rmse_px: float
    max_px: float
    rmse_m: float
    max_m: float
    coverage: float
    passed: bool = False
    reasons: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def coverage(points: np.ndarray, width: float, height: float, cells: int = 4) -> float:
    """Share of a ``cells`` x ``cells`` grid over a width x height image holding at least one point."""
    if len(points) == 0:
        return 0.0
    cx = np.clip((points[:, 0] / width * cells).astype(int), 0, cells - 1)
    cy = np.clip((points[:, 1] / height * cells).astype(int), 0, cells - 1)
    return len(set(zip(cx.tolist(), cy.tolist()))) / cells**2


def assess(
    residual_px: np.ndarray,
    inliers: np.ndarray,
    target_points: np.ndarray,
    width: float,
    height: float,
    metres_per_px: float,
    gate: QualityGate,
) -> Quality:
    """Measure a fit and apply the gate.

    Args:
        residual_px: (N,) residuals of all matches, in target pixels.
        inliers: (N,) bool inlier flags.
        target_points: (N, 2) match positions in the target, raster pixel coordinates.
        width, height: target size in pixels.
        metres_per_px: ground size of a target pixel.
        gate: thresholds.
    """
    r = residual_px[inliers]
    rmse = float(np.sqrt(np.mean(r**2))) if len(r) else float("inf")
    worst = float(r.max()) if len(r) else float("inf")
    cov = coverage(target_points[inliers], width, height)
    reasons = []
    if len(r) < gate.min_inliers:
        reasons.append(f"{len(r)} inliers < {gate.min_inliers}")
    if rmse > gate.max_rmse_px:
        reasons.append(f"RMSE {rmse:.2f} px > {gate.max_rmse_px:g} px")
    if cov < gate.min_coverage:
        reasons.append(f"coverage {cov:.0%} < {gate.min_coverage:.0%}")
    return Quality(
        matches=len(residual_px),
        inliers=int(len(r)),
        rmse_px=rmse,
        max_px=worst,
        rmse_m=rmse * metres_per_px,
        max_m=worst * metres_per_px,
        coverage=cov,
        passed=not reasons,
        reasons=reasons,
    )
