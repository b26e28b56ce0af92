import numpy as np

from georef.options import QualityGate
from georef.quality import Evidence, Placement, assess, coverage


def _assess(residual_px=None, support=150, log_nfa=-300.0, window_log_nfa=-40.0, ce90_px=0.6, outside_m=0.0,
            scale_change=0.01, span=0.9, repeat=0.3, coarser_px=1.0):
    rng = np.random.default_rng(0)
    evidence = Evidence(
        target_px=rng.uniform(0, 512, (200, 2)),
        residual_px=rng.uniform(0, 1, 200) if residual_px is None else residual_px,
        inliers=np.ones(200, bool),
        support=support,
        log_nfa=log_nfa,
        window_log_nfa=window_log_nfa,
        ce90_px=ce90_px,
        span=span,
        confirmation_required=True,
        repeat=repeat,
        repeat_m=370.0,
        coarser_px=coarser_px,
    )
    return assess(evidence, Placement(250.0, scale_change, outside_m), (512, 512), 10.0, QualityGate())


def test_a_good_fit_passes():
    q = _assess()
    assert q.passed and q.reasons == [] and q.inliers == 200
    assert q.rmse_m == q.rmse_px * 10 and q.max_px < 1


def test_coverage_counts_occupied_cells():
    pts = np.array([[10, 10], [20, 20], [500, 500]])
    assert coverage(pts, 512, 512) == 2 / 16


def test_each_gate_reason():
    assert _assess(support=5).reasons == ["5 unguided inliers < 6"]
    assert _assess(log_nfa=1.5).reasons == ["150 unguided inliers could be chance (log10 NFA 1.5)"]
    assert _assess(window_log_nfa=0.4).reasons == ["the refinement's correlation windows do not confirm it"]
    assert _assess(window_log_nfa=None).reasons == ["too little texture for the refinement to confirm it"]
    assert _assess(ce90_px=2.5).reasons == ["estimated error 2.5 px > 2 px at the corners"]
    assert _assess(ce90_px=None).reasons == ["too few measurements to estimate its accuracy"]
    assert _assess(residual_px=np.full(200, 1.8)).reasons == ["tie-point RMSE 1.80 px > 1.5 px"]
    assert _assess(outside_m=40.0).reasons == ["lies 40 m outside the area searched"]
    assert _assess(scale_change=-0.5).reasons == ["changes the pixel size by -50%, beyond 20%"]
    assert _assess(repeat=0.92).reasons == ["its content repeats 370 m away (self-correlation 0.92 > 0.6), within "
                                            "reach of the search: a copy there fits as well"]
    assert _assess(span=0.19).reasons == ["rests on measurements spanning 19% of the target's width or height "
                                          "(< 20%): its corners lie too far outside them"]


def test_the_rmse_limit_counts_in_pixels_of_a_coarser_reference():
    # Tie points against a 30 m reference sit no closer than a share of its pixel: three target pixels.
    assert _assess(residual_px=np.full(200, 1.8), coarser_px=3.0).passed
    assert _assess(residual_px=np.full(200, 4.8), coarser_px=3.0).reasons == ["tie-point RMSE 4.80 px > 4.5 px"]
    assert _assess(ce90_px=5.5, coarser_px=6.0).reasons == [
        "estimated error 5.5 px > 2 px at the corners (a reference pixel is 6 px)"]
