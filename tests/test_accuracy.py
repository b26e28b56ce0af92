import numpy as np
import pytest

from georef import accuracy, geometry
from georef.transforms import MODELS

SIZE = 512.0


def _grid(x0: float, x1: float, y0: float, y1: float, step: float = 32.0) -> np.ndarray:
    xs, ys = np.meshgrid(np.arange(x0, x1, step), np.arange(y0, y1, step))
    return np.stack([xs.ravel(), ys.ravel()], axis=1)


def _truth() -> np.ndarray:
    return geometry.translation(3.2, -1.7) @ geometry.similarity_about((SIZE / 2, SIZE / 2), 0.8, 1.01)


def _corner_error(src: np.ndarray, dst: np.ndarray, model: str) -> float:
    """Mean corner distance of the least-squares fit of ``model`` from the truth."""
    fitted = MODELS[model].fit(src, dst)
    corners = geometry.corners(SIZE, SIZE)
    return float(np.linalg.norm(fitted.apply(corners) - geometry.apply(_truth(), corners), axis=1).mean())


@pytest.mark.parametrize("patch", [(0, SIZE, 0, SIZE), (288, SIZE, 0, 224)])
def test_covariance_spread_is_the_90th_percentile_of_the_fits_corner_error(patch):
    # Independent noise of 0.5 px: over many draws, 90 % of the fits' corner errors lie within the spread.
    src = _grid(*patch)
    rng = np.random.default_rng(1)
    errors, spreads = [], []
    for _ in range(300):
        dst = geometry.apply(_truth(), src) + rng.normal(0, 0.5, src.shape)
        errors.append(_corner_error(src, dst, "similarity"))
        spreads.append(accuracy.covariance_spread(src, dst, np.ones(len(src), bool), "similarity", SIZE, SIZE))
    assert np.percentile(errors, 90) == pytest.approx(np.median(spreads), rel=0.15)


def test_covariance_spread_prices_extrapolation_and_shared_errors():
    rng = np.random.default_rng(2)
    whole, corner = _grid(0, SIZE, 0, SIZE), _grid(288, SIZE, 0, 224)
    spread = {}
    for name, src in (("whole", whole), ("corner", corner)):
        dst = geometry.apply(_truth(), src) + rng.normal(0, 0.5, src.shape)
        everything = np.ones(len(src), bool)
        spread[name] = accuracy.covariance_spread(src, dst, everything, "similarity", SIZE, SIZE)
        shared = accuracy.covariance_spread(src, dst, everything, "similarity", SIZE, SIZE, shared=4)
        assert shared == pytest.approx(2 * spread[name], rel=1e-6)  # four shared measurements: half as many
    assert spread["corner"] > 3 * spread["whole"]


def test_covariance_spread_is_zero_without_residual_freedom():
    src = np.array([[10.0, 10.0], [400.0, 300.0]])
    assert accuracy.covariance_spread(src, src + 1, np.ones(2, bool), "similarity", SIZE, SIZE) == 0.0


def test_covariance_spread_widens_where_most_measurements_disagree_with_the_fit():
    # The inliers' own scatter is cut off at the inlier threshold; the measurements left out say how
    # far the fit is from what the image as a whole shows.
    rng = np.random.default_rng(4)
    src = _grid(0, SIZE, 0, SIZE)
    dst = geometry.apply(_truth(), src) + rng.normal(0, 0.3, src.shape)
    agreeing = np.ones(len(src), bool)
    calm = accuracy.covariance_spread(src, dst, agreeing, "similarity", SIZE, SIZE)
    disagreeing = dst + np.where(rng.random(len(src)) < 0.6, 1, 0)[:, None] * rng.normal(0, 3, src.shape)
    minority = np.all(disagreeing == dst, axis=1)
    assert accuracy.covariance_spread(src, disagreeing, minority, "similarity", SIZE, SIZE) > 3 * calm


def test_estimate_takes_the_larger_fit_term_where_few_blocks_are_occupied():
    # Windows in one corner occupy few blocks of the bootstrap: the covariance sees the extrapolation.
    rng = np.random.default_rng(3)
    src = _grid(288, SIZE, 0, 224, step=16)
    dst = geometry.apply(_truth(), src) + rng.normal(0, 0.5, src.shape)
    estimate = accuracy.estimate(src, dst, np.ones(len(src), bool), "similarity", (512, 512), 10.0,
                                 "refinement windows", shared=4)
    assert estimate.covariance_ce90_px > estimate.bootstrap_ce90_px
    assert estimate.fit_ce90_px == estimate.covariance_ce90_px
    expected = np.sqrt(estimate.fit_ce90_px**2 + estimate.disagreement_px**2)
    assert estimate.ce90_px == pytest.approx(expected) and estimate.ce90_m == pytest.approx(10 * expected)


def test_covariance_spread_moves_continuously_with_the_measurements():
    # Rounding-level changes of the measurements (arithmetic that differs between runs) must not move
    # the estimate by more than they do: the draws are fixed, only their scaling follows the data.
    rng = np.random.default_rng(5)
    src = _grid(0, SIZE, 0, SIZE)
    dst = geometry.apply(_truth(), src) + rng.normal(0, 0.5, src.shape)
    inliers = np.ones(len(src), bool)
    for model in ("shift", "similarity", "affine"):
        base = accuracy.covariance_spread(src, dst, inliers, model, SIZE, SIZE)
        for _ in range(5):
            nudged = dst + rng.normal(0, 1e-6, dst.shape)
            assert accuracy.covariance_spread(src, nudged, inliers, model, SIZE, SIZE) == pytest.approx(
                base, abs=1e-4)


def test_a_shift_chosen_over_noise_is_priced_with_the_rotation_and_scale_it_leaves_out():
    # A 128 px target turned 1.5 degrees and scaled by 2 %, its windows 1.2 px apart from the truth: the
    # shift's corners lie about 3 px off. Priced with the shift's own spread, the estimate covered that in 5 %
    # of draws (a crop under clouds was accepted 3.4 px off with an estimate of 1.7 px).
    size = 128.0
    src = _grid(6, size, 6, size, step=12.0)
    truth = geometry.translation(2.0, -1.0) @ geometry.similarity_about((size / 2, size / 2), 1.5, 0.98)
    corners = geometry.corners(size, size)
    rng = np.random.default_rng(3)
    covered = []
    for _ in range(100):
        dst = geometry.apply(truth, src) + rng.normal(0, 1.2, src.shape)
        rough = MODELS["shift"].fit(src, dst)
        inliers = np.linalg.norm(rough.apply(src) - dst, axis=1) < 1.5
        shift = MODELS["shift"].fit(src[inliers], dst[inliers])
        error = np.linalg.norm(shift.apply(corners) - geometry.apply(truth, corners), axis=1).mean()
        estimate = accuracy.estimate(src, dst, inliers, "shift", (size, size), 10.0, "windows", shared=4.0)
        covered.append(estimate.ce90_px >= error)
    assert np.mean(covered) >= 0.7


def test_the_disagreement_of_a_coarser_input_counts_in_pixels_of_the_finer():
    src = _grid(16, SIZE, 16, SIZE)
    dst = geometry.apply(_truth(), src) + np.random.default_rng(5).normal(0, 1.5, src.shape)
    inliers = np.ones(len(src), bool)
    same = accuracy.estimate(src, dst, inliers, "similarity", (SIZE, SIZE), 10.0, "windows")
    coarser = accuracy.estimate(src, dst, inliers, "similarity", (SIZE, SIZE), 10.0, "windows", finer_share=1 / 3)
    assert coarser.disagreement_px == pytest.approx(same.disagreement_px / 3)
    assert coarser.fit_ce90_px == same.fit_ce90_px
    assert coarser.ce90_px == pytest.approx(np.hypot(coarser.fit_ce90_px, coarser.disagreement_px))
    assert coarser.ce90_px < same.ce90_px


def test_the_disagreement_is_measured_on_windows_of_the_ground_size_where_given():
    # Small windows scatter 1.5 px about the fit; windows of the ground size over the same image 0.3 px:
    # the disagreement is theirs, while the fit's spread still comes from the measurements.
    rng = np.random.default_rng(7)
    src = _grid(0, SIZE, 0, SIZE)
    dst = geometry.apply(_truth(), src) + rng.normal(0, 1.5, src.shape)
    inliers = np.ones(len(src), bool)
    probe = _grid(32, SIZE, 32, SIZE, 64.0)
    content = (probe, geometry.apply(_truth(), probe) + rng.normal(0, 0.3, probe.shape))
    small = accuracy.estimate(src, dst, inliers, "similarity", (SIZE, SIZE), 10.0, "windows")
    ground = accuracy.estimate(src, dst, inliers, "similarity", (SIZE, SIZE), 10.0, "windows", content=content)
    assert ground.fit_ce90_px == small.fit_ce90_px
    assert ground.disagreement_px < 0.6 < 1.2 < small.disagreement_px
    assert ground.ce90_px == pytest.approx(np.hypot(ground.fit_ce90_px, ground.disagreement_px))
