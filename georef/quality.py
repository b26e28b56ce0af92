"""Quality measures of a fitted alignment and the gate that accepts or refuses it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np


@dataclass(frozen=True)
class QualityGate:
    """Thresholds a result must meet to be written.

    Attributes:
        min_inliers: fewest inliers of the unguided matching pass. The guided pass
            finds matches near any prior, right or wrong, so only unguided
            inliers count as independent support.
        max_rmse_px: largest inlier residual RMSE, in target pixels.
        min_coverage: smallest share of a 4x4 grid over the target holding inliers.
        max_scale_change: largest relative change of pixel size against the
            target's own georeference (0.2 = 20 %).
    """

    min_inliers: int = 12
    max_rmse_px: float = 1.5
    min_coverage: float = 0.25
    max_scale_change: float = 0.2


@dataclass
class Quality:
    """How well the tie points support the transform.

    Residuals are those of the inliers; pixels are target pixels.

    Attributes:
        matches, inliers: final matches and inliers (after the guided pass).
        support: inliers of the unguided pass, the gate's evidence.
        rmse_px, max_px, rmse_m, max_m: inlier residuals.
        coverage: share of a 4x4 grid over the target holding inliers.
        shift_m: largest move of a target corner against its own georeference.
        scale_change: fitted pixel size over the target's own, minus one.
        passed, reasons: the gate's verdict and why it refused.
    """

    matches: int
    inliers: int
    support: int
    rmse_px: float
    max_px: float
    rmse_m: float
    max_m: float
    coverage: float
    shift_m: float
    scale_change: float
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
    support: int,
    target_points: np.ndarray,
    width: float,
    height: float,
    metres_per_px: float,
    shift_m: float,
    scale_change: float,
    max_shift_m: float,
    gate: QualityGate,
) -> Quality:
    """Measure a fit and apply the gate.

    Args:
        residual_px: (N,) residuals of all matches, in target pixels.
        inliers: (N,) bool inlier flags.
        support: inliers of the unguided pass.
        target_points: (N, 2) match positions in the target, raster pixel coordinates.
        width, height: target size in pixels.
        metres_per_px: ground size of a target pixel.
        shift_m: largest corner move against the target's own georeference, metres.
        scale_change: relative pixel-size change against it.
        max_shift_m: the search margin; a larger move lies outside what was searched.
        gate: thresholds.
    """
    r = residual_px[inliers]
    rmse = float(np.sqrt(np.mean(r**2))) if len(r) else float("inf")
    worst = float(r.max()) if len(r) else float("inf")
    cov = coverage(target_points[inliers], width, height)
    reasons = []
    if support < gate.min_inliers:
        reasons.append(f"{support} unguided inliers < {gate.min_inliers}")
    if rmse > gate.max_rmse_px:
        reasons.append(f"RMSE {rmse:.2f} px > {gate.max_rmse_px:g} px")
    if cov < gate.min_coverage:
        reasons.append(f"coverage {cov:.0%} < {gate.min_coverage:.0%}")
    if shift_m > max_shift_m:
        reasons.append(f"moves a corner {shift_m:.0f} m, beyond the {max_shift_m:g} m search margin")
    if abs(scale_change) > gate.max_scale_change:
        reasons.append(f"changes the pixel size by {scale_change:+.0%}, beyond {gate.max_scale_change:.0%}")
    return Quality(
        matches=len(residual_px),
        inliers=int(len(r)),
        support=support,
        rmse_px=rmse,
        max_px=worst,
        rmse_m=rmse * metres_per_px,
        max_m=worst * metres_per_px,
        coverage=cov,
        shift_m=shift_m,
        scale_change=scale_change,
        passed=not reasons,
        reasons=reasons,
    )
