import numpy as np

from georef.options import QualityGate
from georef.quality import Evidence, Placement, assess, coverage


def _assess(residual_px=None, inliers=None, support=150, target_points=None, shift_m=250.0, scale_change=0.01):
    rng = np.random.default_rng(0)
    evidence = Evidence(
        target_px=rng.uniform(0, 512, (200, 2)) if target_points is None else target_points,
        residual_px=rng.uniform(0, 1, 200) if residual_px is None else residual_px,
        inliers=np.ones(200, bool) if inliers is None else inliers,
        support=support,
    )
    return assess(evidence, Placement(shift_m, scale_change, 600.0), (512, 512), 10.0, QualityGate())


def test_a_good_fit_passes():
    q = _assess()
    assert q.passed and q.reasons == [] and q.inliers == 200
    assert q.rmse_m == q.rmse_px * 10 and q.max_px < 1


def test_coverage_counts_occupied_cells():
    pts = np.array([[10, 10], [20, 20], [500, 500]])
    assert coverage(pts, 512, 512) == 2 / 16


def test_each_gate_reason():
    assert _assess(support=5).reasons == ["5 unguided inliers < 12"]
    assert _assess(residual_px=np.full(200, 2.0)).reasons == ["RMSE 2.00 px > 1.5 px"]
    assert _assess(target_points=np.full((200, 2), 5.0)).reasons == ["coverage 6% < 25%"]
    assert _assess(shift_m=4000.0).reasons == ["moves a corner 4000 m, beyond the 600 m search margin"]
    assert _assess(scale_change=-0.5).reasons == ["changes the pixel size by -50%, beyond 20%"]
