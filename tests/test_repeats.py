import numpy as np
import pytest

from georef.raster import MatchImage, normalise
from georef.repeats import strongest_repeat


def _image(pixels: np.ndarray) -> MatchImage:
    pixels = (pixels - pixels.min()) / np.ptp(pixels)
    return MatchImage(pixels.astype(np.float32), np.ones(pixels.shape, bool), np.eye(3))


def _pattern(noise: float = 0.0, seed: int = 0) -> np.ndarray:
    """A 512 px texture repeating every 37 px across and 53 px down, plus noise (share of its spread)."""
    import cv2

    rng = np.random.default_rng(seed)
    tile = cv2.GaussianBlur(rng.random((53, 37)).astype(np.float32), (0, 0), 1.2)
    pattern = np.tile(tile, (10, 14))[:512, :512]
    return pattern + noise * tile.std() * rng.standard_normal(pattern.shape).astype(np.float32)


def test_an_exact_repeat_is_found_at_its_period():
    repeat = strongest_repeat(_image(_pattern()), reach_px=120)
    assert repeat.peak > 0.95
    assert repeat.shift in {(37, 0), (-37, 0), (0, 53), (0, -53)}


def test_noise_lowers_the_repeat():
    assert 0.6 < strongest_repeat(_image(_pattern(0.25)), 120).peak < strongest_repeat(_image(_pattern()), 120).peak


def test_a_repeat_beyond_reach_is_not_seen():
    assert strongest_repeat(_image(_pattern()), reach_px=30).peak < 0.2


def test_a_small_image_is_not_judged():
    assert strongest_repeat(_image(_pattern()[:160, :160]), 120).peak == 0.0


def test_invalid_pixels_carry_no_repeat():
    image = _image(_pattern())
    blank = MatchImage(image.pixels, np.zeros(image.shape, bool), image.to_world)
    assert strongest_repeat(blank, 120).peak == 0.0


@pytest.mark.parametrize("col, row", [(0, 0), (700, 300), (1400, 1400)])
def test_a_real_scene_does_not_repeat(scene, col, row):
    data = scene.data[:, row:row + 512, col:col + 512]
    valid = np.ones(data.shape[1:], bool)
    pixels = normalise(data, valid).astype(np.float32)
    assert strongest_repeat(MatchImage(pixels, valid, np.eye(3)), 120).peak < 0.45
