import numpy as np
import pytest

from georef import geometry, raster
from georef.errors import MatchingError
from georef.options import RefineOptions
from georef.refine import measure_windows, orientation_field, phase_correlate, refine, resample_to


@pytest.fixture(scope="module")
def image(scene):
    data = scene.data[:, 500:1012, 500:1012]
    return raster.normalise(data, np.ones(data.shape[1:], bool))


def test_resample_to_with_identity_is_a_copy(image):
    np.testing.assert_allclose(resample_to(image, np.eye(3), image.shape)[5:-5, 5:-5], image[5:-5, 5:-5], atol=1e-5)


def test_measure_windows_finds_a_subpixel_shift(image):
    truth = geometry.translation(0.4, -0.3)  # reference content sits at target + (0.4, -0.3)
    shifted = resample_to(image, np.linalg.inv(truth), image.shape)
    valid = np.zeros(image.shape, bool)
    valid[8:-8, 8:-8] = True
    centres, offsets, _, _ = measure_windows(image, shifted, valid)
    assert len(centres) > 50
    # One measurement is unbiased: OpenCV's peak centroid gave (0.2, -0.15) here.
    np.testing.assert_allclose(np.median(offsets, axis=0), [0.4, -0.3], atol=0.03)


def test_orientation_field_is_the_same_where_contrast_is_inverted(image):
    np.testing.assert_allclose(orientation_field(1 - image), orientation_field(image), atol=1e-5)


def test_orientation_field_tells_edges_apart_by_direction():
    # A vertical and a horizontal edge of equal strength: their gradient magnitudes are alike, their
    # doubled angles opposite.
    vertical = np.zeros((32, 32), np.float32)
    vertical[:, 16:] = 1
    along_x, along_y = orientation_field(vertical)[:, 16, 15:17], orientation_field(vertical.T)[:, 15:17, 16]
    np.testing.assert_allclose(along_x, -along_y, atol=1e-5)
    assert along_x[0].min() > 0 and np.abs(along_x[1]).max() < 1e-5


def test_measure_windows_finds_a_shift_where_snow_inverts_the_contrast(image):
    truth = geometry.translation(0.6, 0.25)
    inverted = resample_to(1 - image, np.linalg.inv(truth), image.shape)
    valid = np.zeros(image.shape, bool)
    valid[8:-8, 8:-8] = True
    centres, offsets, _, _ = measure_windows(image, inverted, valid)
    assert len(centres) > 50
    np.testing.assert_allclose(np.median(offsets, axis=0), [0.6, 0.25], atol=0.03)


def test_phase_correlate_sums_the_channels_of_multichannel_windows(image):
    moved = _fourier_shift(image, 1.25, -0.5)
    field, moved_field = orientation_field(image), orientation_field(moved)
    tops = [(y, x) for y in range(64, 400, 64) for x in range(64, 400, 64)]
    a = np.stack([field[:, y:y + 64, x:x + 64] for y, x in tops])
    b = np.stack([moved_field[:, y:y + 64, x:x + 64] for y, x in tops])
    offsets, peaks = phase_correlate(a, b)
    np.testing.assert_allclose(np.median(offsets, axis=0), (1.25, -0.5), atol=0.03)
    assert np.median(peaks) > 0.7 and np.all(peaks <= 1.0 + 1e-5)


def _fourier_shift(image: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """``image`` moved by (dx, dy) pixels, circularly, without interpolation blur."""
    fy = np.fft.fftfreq(image.shape[0])[:, None]
    fx = np.fft.fftfreq(image.shape[1])[None, :]
    return np.fft.ifft2(np.fft.fft2(image) * np.exp(-2j * np.pi * (fx * dx + fy * dy))).real.astype(np.float32)


@pytest.mark.parametrize("shift", [(0.0, 0.0), (0.1, -0.2), (0.5, 0.5), (-1.3, 0.8), (2.75, -2.4)])
def test_phase_correlate_measures_whole_and_sub_pixel_shifts_without_bias(image, shift):
    moved = _fourier_shift(image, *shift)
    tops = [(y, x) for y in range(64, 400, 64) for x in range(64, 400, 64)]
    a = np.stack([image[y:y + 64, x:x + 64] for y, x in tops])
    b = np.stack([moved[y:y + 64, x:x + 64] for y, x in tops])
    offsets, peaks = phase_correlate(a, b)
    # Only the windows' taper pulls large shifts in (the content overlaps less): 1.5 % at 2.75 px,
    # which the rounds of refine() remove.
    np.testing.assert_allclose(np.median(offsets, axis=0), shift, atol=0.02, rtol=0.02)
    assert np.median(peaks) > 0.8 and np.all(peaks <= 1.0 + 1e-5)


def test_phase_correlate_gives_a_low_peak_for_unrelated_windows():
    rng = np.random.default_rng(0)
    a, b = (rng.random((20, 64, 64), dtype=np.float32) for _ in range(2))
    _, peaks = phase_correlate(a, b)
    assert np.all(peaks < 0.3)


@pytest.mark.parametrize("model", ["shift", "affine"])
def test_refine_recovers_a_transform_from_a_pixel_off_start(image, model):
    truth = geometry.translation(12.35, -7.8) @ geometry.similarity_about((256, 256), 0.4 if model == "affine" else 0, 1.0)
    chip = resample_to(image, np.linalg.inv(truth), image.shape)  # chip(truth(p)) = image(p)
    valid = np.ones(image.shape, bool)
    chip_valid = resample_to(np.ones_like(image), np.linalg.inv(truth), image.shape) > 0.99
    start = geometry.translation(1.0, -0.8) @ truth  # a pixel off, as a keypoint fit may be
    result = refine(raster.MatchImage(image, valid, np.eye(3)), raster.MatchImage(chip, chip_valid, np.eye(3)), start,
                    model)
    assert result is not None and result.inliers.sum() >= 12
    err = geometry.mean_corner_distance(result.matrix, truth, 512, 512)
    before = geometry.mean_corner_distance(start, truth, 512, 512)
    assert err < 0.1 < before


def test_refine_measures_windows_of_the_ground_size_where_its_own_were_made_smaller(image):
    # A 256 px image holds 32 px windows eight times across; the content's disagreement is measured
    # once more in the 64 px windows a 512 px image would have, on the final resampling.
    crop = np.ascontiguousarray(image[:256, :256])
    truth = geometry.translation(5.3, -2.6)
    chip = resample_to(crop, np.linalg.inv(truth), crop.shape)
    valid = np.ones(crop.shape, bool)
    target = raster.MatchImage(crop, valid, np.eye(3))
    reference = raster.MatchImage(chip, valid.copy(), np.eye(3))
    options = RefineOptions().at_scale(1.0, 256, 1.0)
    assert options.window == 32 and RefineOptions().ground_window(1.0) == 64
    result = refine(target, reference, geometry.translation(0.8, 0.5) @ truth, "shift", options, content_window=64)
    centres, chip_px = result.content
    assert len(centres) >= 9 and np.all(np.diff(np.unique(centres[:, 0])) == 32) and centres.min() >= 32
    np.testing.assert_allclose(chip_px - centres, np.tile([5.3, -2.6], (len(centres), 1)), atol=0.15)
    # Windows already of the ground size, or an image too small for it: nothing more is measured.
    assert refine(target, reference, truth, "shift", options, content_window=32).content is None
    assert refine(target, reference, truth, "shift", options, content_window=320).content is None


def test_refine_gives_up_on_a_textureless_image():
    flat = np.full((256, 256), 0.5, np.float32)
    ok = np.ones_like(flat, bool)
    image = raster.MatchImage(flat, ok, np.eye(3))
    assert refine(image, image, np.eye(3), "affine") is None


def test_refine_gives_up_where_its_windows_agree_on_no_transform(image, monkeypatch):
    # Seen on a real widened search: 15 textured windows on which MAGSAC found no affine; the
    # refinement raised instead of leaving the coarse fit to the gate.
    def no_fit(src, dst, model, threshold, *args):
        raise MatchingError(f"no {model} model fits the {len(src)} matches")

    monkeypatch.setattr("georef.refine.fit_transform", no_fit)
    valid = np.ones(image.shape, bool)
    assert refine(raster.MatchImage(image, valid, np.eye(3)), raster.MatchImage(image, valid, np.eye(3)), np.eye(3),
                  "affine") is None


def test_refine_stops_once_a_round_moves_the_fit_no_less_than_the_one_before(image, monkeypatch):
    # Winter windows can leave the fit wandering by a few hundredths of a pixel from round to round:
    # once a round no longer contracts, further rounds only draw from that noise again.
    from georef.fitting import Fit

    shifts = iter([1.0, 1.3, 1.8, 1.85, 1.86])  # moves of 1.0, 0.3, then 0.5: no longer contracting
    calls = []

    def wandering(src, dst, model, threshold, *args):
        calls.append(len(src))
        m = np.eye(3)
        m[0, 2] = next(shifts)
        return Fit("shift", m, np.ones(len(src), bool), np.zeros(len(src)))

    monkeypatch.setattr("georef.refine.fit_transform", wandering)
    valid = np.ones(image.shape, bool)
    result = refine(raster.MatchImage(image, valid, np.eye(3)), raster.MatchImage(image, valid, np.eye(3)),
                    np.eye(3), "shift")
    assert len(calls) == 3 and result.matrix[0, 2] == 1.8
