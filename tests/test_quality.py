import numpy as np

from georef.quality import QualityGate, assess, coverage


def _assess(**overrides):
    rng = np.random.default_rng(0)
    args = dict(
        residual_px=rng.uniform(0, 1, 200),
        inliers=np.ones(200, bool),
        support=150,
        target_points=rng.uniform(0, 512, (200, 2)),
        width=512,
        height=512,
        metres_per_px=10.0,
        shift_m=250.0,
        scale_change=0.01,
        max_shift_m=600.0,
        gate=QualityGate(),
    )
    args.update(overrides)
    return assess(**args)


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
