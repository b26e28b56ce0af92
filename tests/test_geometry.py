import numpy as np
import pytest
from affine import Affine
from hypothesis import given, settings
from hypothesis import strategies as st

from georef import geometry
from georef.fitting import fit_transform


def test_affine_matrix_round_trip():
    a = Affine(10.0, 0.5, 400000.0, -0.2, -10.0, 5000000.0)
    assert geometry.to_affine(geometry.to_matrix(a)) == a


def test_to_affine_refuses_projective():
    m = np.eye(3)
    m[2, 0] = 1e-3
    with pytest.raises(ValueError, match="projective"):
        geometry.to_affine(m)


def test_pixel_to_map_agrees_with_rasterio_affine():
    a = Affine(10.0, 0.0, 400000.0, 0.0, -10.0, 5000000.0)
    pts = np.array([[0.0, 0.0], [0.5, 0.5], [512.0, 100.0]])
    expected = np.array([(a.a * x + a.b * y + a.c, a.d * x + a.e * y + a.f) for x, y in pts])
    np.testing.assert_allclose(geometry.apply(geometry.to_matrix(a), pts), expected)


def test_index_to_raster_moves_to_pixel_centre():
    assert geometry.index_to_raster(np.array([[0.0, 0.0]])).tolist() == [[0.5, 0.5]]


def test_composition_applies_right_to_left():
    shift = geometry.translation(5, -3)
    scale = geometry.scaling(2)
    p = np.array([[1.0, 1.0]])
    np.testing.assert_allclose(geometry.apply(shift @ scale, p), [[7.0, -1.0]])
    np.testing.assert_allclose(geometry.apply(scale @ shift, p), [[12.0, -4.0]])


def test_similarity_about_keeps_centre_fixed():
    m = geometry.similarity_about((100, 50), 30, 1.5)
    np.testing.assert_allclose(geometry.apply(m, [[100, 50]]), [[100, 50]], atol=1e-9)


def test_best_affine_of_an_affine_is_itself():
    m = geometry.to_matrix(Affine(1.01, 0.02, 3.0, -0.01, 0.99, -4.0))
    np.testing.assert_allclose(geometry.best_affine(m, 512, 512), m, atol=1e-9)


def test_mean_corner_distance_of_a_shift():
    assert geometry.mean_corner_distance(geometry.translation(3, 4), np.eye(3), 100, 100) == pytest.approx(5.0)


affine_params = st.tuples(
    st.floats(-5, 5),  # rotation, degrees
    st.floats(0.9, 1.1),  # scale
    st.floats(-0.05, 0.05),  # shear
    st.floats(-50, 50),
    st.floats(-50, 50),
)


def _affine(rot, scale, shear, tx, ty) -> np.ndarray:
    m = geometry.similarity_about((256, 256), rot, scale)
    m[0, 1] += shear
    return geometry.translation(tx, ty) @ m


@settings(max_examples=40, deadline=None)
@given(affine_params, st.integers(0, 2**16))
def test_known_affine_is_recovered_from_exact_matches(params, seed):
    truth = _affine(*params)
    src = np.random.default_rng(seed).uniform(0, 512, (60, 2))
    fit = fit_transform(src, geometry.apply(truth, src), "affine", threshold=1.0)
    np.testing.assert_allclose(fit.matrix, truth, atol=1e-6)
    assert fit.inliers.all()


@settings(max_examples=20, deadline=None)
@given(st.floats(-5, 5), st.floats(0.9, 1.1), st.floats(-50, 50), st.floats(-50, 50), st.integers(0, 2**16))
def test_known_similarity_is_recovered_with_outliers(rot, scale, tx, ty, seed):
    rng = np.random.default_rng(seed)
    truth = geometry.translation(tx, ty) @ geometry.similarity_about((256, 256), rot, scale)
    src = rng.uniform(0, 512, (80, 2))
    dst = geometry.apply(truth, src)
    dst[:20] += rng.uniform(20, 60, (20, 2)) * rng.choice([-1, 1], (20, 2))
    fit = fit_transform(src, dst, "similarity", threshold=1.0)
    np.testing.assert_allclose(fit.matrix, truth, atol=1e-6)
    assert not fit.inliers[:20].any() and fit.inliers[20:].all()


def test_select_spread_prefers_far_points():
    pts = np.array([[0, 0], [1, 0], [100, 0], [0, 100], [100, 100], [50, 50]], float)
    assert set(geometry.select_spread(pts, 4).tolist()) == {0, 2, 3, 4}
