import numpy as np
import pytest

from georef import geometry
from georef.errors import MatchingError
from georef.fitting import MODELS, fit_transform


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
