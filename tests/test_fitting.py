import numpy as np
import pytest

from georef import geometry
from georef.errors import MatchingError
from georef.fitting import blocked_errors, fit_transform, held_out_errors, select_model
from georef.transforms import AUTO, MATRIX_MODELS as MODELS


def _points(n=100, seed=0):
    return np.random.default_rng(seed).uniform(0, 500, (n, 2))


@pytest.mark.parametrize("model", MODELS)
def test_each_model_recovers_a_shift_despite_outliers(model):
    rng = np.random.default_rng(1)
    src = _points()
    dst = src + (12.5, -7.25)
    dst[:30] = rng.uniform(0, 500, (30, 2))  # 30 % outliers
    fit = fit_transform(src, dst, model, threshold=1.0)
    np.testing.assert_allclose(geometry.apply(fit.matrix, [[250, 250]]), [[262.5, 242.75]], atol=1e-6)
    assert fit.inliers[30:].all()
    assert fit.inliers[:30].sum() <= 1  # a random point may land on the shift by chance


def test_homography_is_recovered():
    h = np.array([[1.01, 0.02, 5.0], [-0.01, 0.98, -3.0], [2e-5, -1e-5, 1.0]])
    src = _points()
    fit = fit_transform(src, geometry.apply(h, src), "homography", threshold=1.0)
    grid = geometry.grid_points(500, 500, 5)
    np.testing.assert_allclose(geometry.apply(fit.matrix, grid), geometry.apply(h, grid), atol=1e-4)


def test_too_few_matches_is_a_matching_error():
    src = _points(3)
    with pytest.raises(MatchingError, match="only 3 matches"):
        fit_transform(src, src, "affine")


def test_unknown_model():
    with pytest.raises(ValueError, match="unknown model 'spline'"):
        fit_transform(_points(), _points(), "spline")


def test_fit_is_repeatable_with_a_seed():
    rng = np.random.default_rng(3)
    src = _points()
    dst = src + rng.normal(0, 0.5, src.shape)
    dst[:40] = rng.uniform(0, 500, (40, 2))
    a = fit_transform(src, dst, "affine", seed=7)
    b = fit_transform(src, dst, "affine", seed=7)
    np.testing.assert_array_equal(a.matrix, b.matrix)


def _similarity_with_local_bias(seed=0):
    """A similarity plus a smooth, spatially correlated offset field of about half a pixel,
    the kind cross-season matches carry (shadows, snow edges), and fine noise."""
    rng = np.random.default_rng(seed)
    src = _points(300, seed)
    truth = geometry.translation(3.0, -2.0) @ geometry.similarity_about((250, 250), 0.5, 1.003)
    bias = 0.6 * np.stack([np.sin(src[:, 1] / 90 + 1), np.cos(src[:, 0] / 110)], axis=1)
    return src, geometry.apply(truth, src) + bias + rng.normal(0, 0.15, src.shape), truth


def test_auto_keeps_a_similarity_against_correlated_local_offsets():
    src, dst, truth = _similarity_with_local_bias()
    assert select_model(src, dst) == "similarity"
    fit = fit_transform(src, dst, AUTO, threshold=2.0)
    assert fit.model == "similarity"
    # ...and is closer to the truth at the corners than the affine, which bends to the offsets.
    affine = fit_transform(src, dst, "affine", threshold=2.0)
    assert geometry.mean_corner_distance(fit.matrix, truth, 500, 500) < geometry.mean_corner_distance(
        affine.matrix, truth, 500, 500)


def test_auto_chooses_the_affine_for_a_real_shear_and_stretch():
    rng = np.random.default_rng(2)
    src = _points(300)
    truth = np.array([[1.012, 0.008, 4.0], [0.002, 0.995, -6.0], [0.0, 0.0, 1.0]])  # 3-6 px at the corners
    dst = geometry.apply(truth, src) + rng.normal(0, 0.3, src.shape)
    dst[:50] = rng.uniform(0, 500, (50, 2))  # outliers: auto fits robustly before choosing
    fit = fit_transform(src, dst, AUTO, threshold=2.0)
    assert fit.model == "affine"
    assert geometry.mean_corner_distance(fit.matrix, truth, 500, 500) < 0.2


def test_auto_keeps_a_shift_where_the_data_hold_no_rotation_or_scale():
    rng = np.random.default_rng(4)
    src = _points(200)
    dst = src + (4.3, -2.1) + rng.normal(0, 0.4, src.shape)
    assert select_model(src, dst) == "shift"
    # a small real rotation (0.3 deg: 1.3 px at the corners of 500 px) is demanded
    turned = geometry.apply(geometry.similarity_about((250, 250), 0.3, 1.0), src) + rng.normal(0, 0.4, src.shape)
    assert select_model(src, turned) == "similarity"


def test_auto_with_too_few_points_to_compare_is_the_similarity():
    src = _points(8)
    assert select_model(src, src + 1.0) == "similarity"


def test_blocked_errors_hold_each_block_out():
    src = _points(90)
    dst = src + (2.0, 1.0)
    dst[src[:, 0] < 100] += 5.0  # one strip offset: held out, no other block predicts it
    errors = blocked_errors("shift", src, dst)
    assert np.isfinite(errors).all()
    assert errors[src[:, 0] < 100].min() > errors[src[:, 0] > 200].max()


@pytest.mark.parametrize("model", ["shift", "similarity", "affine"])
def test_blocked_errors_equal_one_fit_per_block(model):
    from georef.transforms import least_squares

    rng = np.random.default_rng(3)
    src = rng.random((120, 2)) * 512
    dst = geometry.apply(np.array([[1.01, 0.02, 5.3], [-0.015, 0.99, -7.1], [0, 0, 1]]), src)
    dst += rng.normal(0, 0.7, src.shape)
    edges = [np.quantile(src[:, axis], [1 / 3, 2 / 3]) for axis in (0, 1)]
    cell = np.searchsorted(edges[0], src[:, 0]) * 3 + np.searchsorted(edges[1], src[:, 1])
    expected = np.empty(len(src))
    for k in range(9):
        held = cell == k
        fit = least_squares(model, src[~held], dst[~held])
        expected[held] = np.linalg.norm(geometry.apply(fit, src[held]) - dst[held], axis=1)
    np.testing.assert_allclose(blocked_errors(model, src, dst), expected, rtol=0, atol=1e-9)


@pytest.mark.parametrize("model", ["shift", "similarity", "affine"])
@pytest.mark.parametrize("n", [5, 40])
def test_held_out_errors_equal_one_fit_per_fold(model, n):
    from georef.transforms import MODELS

    rng = np.random.default_rng(4)
    src = rng.random((n, 2)) * 512
    dst = geometry.apply(np.array([[1.01, 0.02, 5.3], [-0.015, 0.99, -7.1], [0, 0, 1]]), src)
    dst += rng.normal(0, 0.7, src.shape)
    fold = np.random.default_rng(0).permutation(n) % 5
    expected = np.empty(n)
    for k in range(5):
        held = fold == k
        fit = MODELS[model].fit(src[~held], dst[~held])
        expected[held] = np.linalg.norm(fit.apply(src[held]) - dst[held], axis=1)
    np.testing.assert_allclose(held_out_errors(model, src, dst), expected, rtol=0, atol=1e-9)
