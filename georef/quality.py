"""Quality measures of a fitted alignment and the gate that accepts or refuses it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from georef import geometry
from georef.options import QualityGate


@dataclass(frozen=True)
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
        log_nfa: log10 of the number of false alarms of the unguided inliers.
        window_log_nfa: the same for the refinement windows agreeing with the fit (None: no refinement).
        span: share of the target's width or height, the smaller, that the fit's measurements span.
        repeat: correlation of the target's content with itself at its strongest repeat within reach of the
            search (1: it repeats exactly; see :mod:`georef.repeats`).
        repeat_m: how far away that repeat lies, metres.
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
    log_nfa: float = float("-inf")
    window_log_nfa: float | None = None
    span: float = 1.0
    repeat: float = 0.0
    repeat_m: float = 0.0
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


def span(points: np.ndarray, width: float, height: float, footprint: float = 0.0) -> float:
    """Share of a width x height image's width or height, the smaller, that the points span, each point
    standing for a ``footprint``-wide square (a correlation window; 0 for a tie point)."""
    if len(points) == 0:
        return 0.0
    extent = np.ptp(points, axis=0) + footprint
    return float(min(1.0, (extent / (width, height)).min()))


#: A reference pixel this many target pixels wide or wider is named where the estimate refuses a fit: its
#: pixel, not the fit, may be what bounds the accuracy.
COARSER_HINT = 1.5


@dataclass(frozen=True)
class Evidence:
    """The tie points a fit rests on.

    Attributes:
        target_px: (N, 2) match positions in the target, raster pixel coordinates.
        residual_px: (N,) residuals of all matches, in target pixels.
        inliers: (N,) bool inlier flags.
        support: inliers of the unguided pass.
        log_nfa: log10 of the number of false alarms of the unguided inliers.
        window_log_nfa: the same for the refinement windows that agree with the final fit; None
            where no refinement ran.
        ce90_px: the estimated error at the corners (see :mod:`georef.accuracy`); None where unknown.
        span: share of the target's width or height, the smaller, that the measurements of the
            estimate span (:meth:`georef.pipeline.Measurements.span`).
        confirmation_required: the refinement's windows must confirm the fit.
        repeat, repeat_m: the target's strongest repeat within reach of the search, and its distance in
            metres (:attr:`Quality.repeat`).
        coarser_px: the coarser input's pixel, in target pixels (1 where the target is the coarser): tie
            points sit no closer than a fraction of it, so the RMSE limit counts in its pixels.
    """

    target_px: np.ndarray
    residual_px: np.ndarray
    inliers: np.ndarray
    support: int
    log_nfa: float = float("-inf")
    window_log_nfa: float | None = None
    ce90_px: float | None = 0.0
    span: float = 1.0
    confirmation_required: bool = False
    repeat: float = 0.0
    repeat_m: float = 0.0
    coarser_px: float = 1.0


@dataclass(frozen=True)
class Placement:
    """Where a fit puts the target against where it claimed to be.

    Attributes:
        shift_m: largest corner move against the target's own georeference, metres.
        scale_change: relative pixel-size change against it.
        outside_m: how far the fitted footprint reaches beyond the area searched, metres (0: inside).
    """

    shift_m: float
    scale_change: float
    outside_m: float = 0.0

    @classmethod
    def of(cls, transform: np.ndarray, claimed: np.ndarray, size: tuple[int, int], metres_per_unit: float,
           any_corner: bool = False, outside_m: float = 0.0) -> "Placement":
        """The placement of a fitted target pixel -> map ``transform`` against the ``claimed`` one.

        Args:
            any_corner: measure each fitted corner's move to the nearest claimed corner (a target turned by
                quarter turns lands its corners on other corners of its footprint).
        """
        corners = geometry.corners(*size)
        fitted, own = geometry.apply(transform, corners), geometry.apply(claimed, corners)
        if any_corner:
            moved = np.linalg.norm(fitted[:, None] - own[None], axis=2).min(axis=1)
        else:
            moved = np.linalg.norm(fitted - own, axis=1)
        scale = geometry.pixel_scale(transform) / geometry.pixel_scale(claimed)
        return cls(float(moved.max()) * metres_per_unit, scale - 1, outside_m)


def assess(evidence: Evidence, placement: Placement, size: tuple[int, int], metres_per_px: float,
           gate: QualityGate) -> Quality:
    """Measure a fit and apply the gate.

    Args:
        evidence: the tie points and their residuals.
        placement: how far the fit moves the target.
        size: target (width, height) in pixels.
        metres_per_px: ground size of a target pixel.
        gate: thresholds.
    """
    r = evidence.residual_px[evidence.inliers]
    rmse = float(np.sqrt(np.mean(r**2))) if len(r) else float("inf")
    worst = float(r.max()) if len(r) else float("inf")
    cov = coverage(evidence.target_px[evidence.inliers], *size)
    support = evidence.support
    reasons = []
    if support < gate.min_inliers:
        reasons.append(f"{support} unguided inliers < {gate.min_inliers}")
    if evidence.log_nfa > gate.max_log_nfa:
        reasons.append(f"{support} unguided inliers could be chance (log10 NFA {evidence.log_nfa:.1f})")
    if evidence.confirmation_required:
        if evidence.window_log_nfa is None:
            reasons.append("too little texture for the refinement to confirm it")
        elif evidence.window_log_nfa > gate.max_log_nfa:
            reasons.append("the refinement's correlation windows do not confirm it")
    if evidence.ce90_px is None:
        reasons.append("too few measurements to estimate its accuracy")
    elif evidence.ce90_px > gate.max_ce90_px:
        reasons.append(f"estimated error {evidence.ce90_px:.1f} px > {gate.max_ce90_px:g} px at the corners"
                       + (f" (a reference pixel is {evidence.coarser_px:.3g} px)"
                          if evidence.coarser_px >= COARSER_HINT else ""))
    if evidence.span < gate.min_span:
        reasons.append(f"rests on measurements spanning {evidence.span:.0%} of the target's width or height "
                       f"(< {gate.min_span:.0%}): its corners lie too far outside them")
    max_rmse = gate.max_rmse_px * max(1.0, evidence.coarser_px)
    if rmse > max_rmse:
        reasons.append(f"tie-point RMSE {rmse:.2f} px > {max_rmse:.3g} px")
    if evidence.repeat > gate.max_repeat:
        reasons.append(f"its content repeats {evidence.repeat_m:.0f} m away (self-correlation {evidence.repeat:.2f} "
                       f"> {gate.max_repeat:g}), within reach of the search: a copy there fits as well")
    if placement.outside_m > 0:
        reasons.append(f"lies {placement.outside_m:.0f} m outside the area searched")
    if abs(placement.scale_change) > gate.max_scale_change:
        reasons.append(f"changes the pixel size by {placement.scale_change:+.0%}, beyond {gate.max_scale_change:.0%}")
    return Quality(
        matches=len(evidence.residual_px),
        inliers=int(len(r)),
        support=support,
        rmse_px=rmse,
        max_px=worst,
        rmse_m=rmse * metres_per_px,
        max_m=worst * metres_per_px,
        coverage=cov,
        shift_m=placement.shift_m,
        scale_change=placement.scale_change,
        log_nfa=evidence.log_nfa,
        window_log_nfa=evidence.window_log_nfa,
        span=evidence.span,
        repeat=evidence.repeat,
        repeat_m=evidence.repeat_m,
        passed=not reasons,
        reasons=reasons,
    )
