import numpy as np
import pytest

from georef import geometry, raster
from georef.refine import refine, resample_to, window_offsets


@pytest.fixture(scope="module")
def image(scene):
    data = scene.data[:, 500:1012, 500:1012]
    return raster.normalise(data, np.ones(data.shape[1:], bool))


def test_resample_to_with_identity_is_a_copy(image):
    np.testing.assert_allclose(resample_to(image, np.eye(3), image.shape)[5:-5, 5:-5], image[5:-5, 5:-5], atol=1e-5)


def test_window_offsets_measure_a_subpixel_shift(image):
    truth = geometry.translation(0.4, -0.3)  # reference content sits at target + (0.4, -0.3)
    shifted = resample_to(image, np.linalg.inv(truth), image.shape)
    valid = np.zeros(image.shape, bool)
    valid[8:-8, 8:-8] = True
    centres, offsets, _ = window_offsets(image, shifted, valid)
    assert len(centres) > 50
    # A single measurement is biased towards whole pixels (OpenCV's peak centroid);
    # refine() iterates, so it converges where the measured offset is zero.
    median = np.median(offsets, axis=0)
    assert 0.15 < median[0] <= 0.45 and -0.35 <= median[1] < -0.1


@pytest.mark.parametrize("model", ["shift", "affine"])
def test_refine_recovers_a_transform_from_a_pixel_off_start(image, model):
    truth = geometry.translation(12.35, -7.8) @ geometry.similarity_about((256, 256), 0.4 if model == "affine" else 0, 1.0)
    chip = resample_to(image, np.linalg.inv(truth), image.shape)  # chip(truth(p)) = image(p)
    valid = np.ones(image.shape, bool)
    chip_valid = resample_to(np.ones_like(image), np.linalg.inv(truth), image.shape) > 0.99
    start = geometry.translation(1.0, -0.8) @ truth  # a pixel off, as a keypoint fit may be
    result = refine(image, valid, chip, chip_valid, start, model)
    assert result is not None and result.inliers.sum() >= 12
    err = geometry.mean_corner_distance(result.matrix, truth, 512, 512)
    before = geometry.mean_corner_distance(start, truth, 512, 512)
    assert err < 0.1 < before


def test_refine_gives_up_on_a_textureless_image():
    flat = np.full((256, 256), 0.5, np.float32)
    ok = np.ones_like(flat, bool)
    assert refine(flat, ok, flat, ok, np.eye(3), "affine") is None
