import itertools

import numpy as np
import pytest

from georef import geometry
from georef.matching import upright
from georef.raster import MatchImage

NORTH_UP = np.array([[10.0, 0.0, 500000.0], [0.0, -10.0, 6000000.0], [0.0, 0.0, 1.0]])


@pytest.mark.parametrize("mirrored, quarter_turns", list(itertools.product((False, True), range(4))))
def test_upright_shows_an_image_as_a_north_up_map_does_and_keeps_each_pixel_where_it_was(mirrored, quarter_turns):
    h, w = 30, 40
    pixels = np.random.default_rng(0).random((h, w)).astype(np.float32)
    # the raster's pixels -> map: north-up, then mirrored top to bottom, then turned
    to_map = NORTH_UP @ (np.array([[1.0, 0.0, 0.0], [0.0, -1.0, h], [0.0, 0.0, 1.0]]) if mirrored else np.eye(3))
    for _ in range(quarter_turns):
        to_map = to_map @ np.array([[0.0, -1.0, w], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    image = MatchImage(pixels, np.ones((h, w), bool), np.eye(3))
    shown = upright(image, to_map)
    linear = (to_map @ shown.to_world)[:2, :2]
    assert np.linalg.det(linear) < 0 and linear[0, 0] > 0 and abs(linear[1, 0]) < 1e-9  # rows run south, x east
    rows, cols = np.mgrid[0:shown.shape[0], 0:shown.shape[1]]
    centres = np.stack([cols.ravel(), rows.ravel()], axis=1) + 0.5
    x, y = np.floor(geometry.apply(shown.to_world, centres)).astype(int).T
    np.testing.assert_array_equal(shown.pixels.ravel(), pixels[y, x])
