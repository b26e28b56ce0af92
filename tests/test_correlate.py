import numpy as np
import pytest

from georef import geometry
from georef.correlate import Offset, find_offset
from georef.raster import MatchImage


def _image(scene, x: int, y: int, size: int) -> MatchImage:
    band = scene.data[0, y:y + size, x:x + size].astype(np.float32)
    pixels = (band - band.min()) / (band.max() - band.min())
    return MatchImage(pixels, np.ones(pixels.shape, bool), np.eye(3))


def test_finds_the_whole_pixel_offset_and_quadrants_that_agree(scene):
    chip = _image(scene, 300, 300, 700)
    target = _image(scene, 400 + 17, 400 - 9, 256)
    # The claim puts the target at (400, 400) of the scene: 100 px into the chip.
    offset = find_offset(target, chip, geometry.translation(100, 100), margin_px=40)
    assert offset.shift == pytest.approx([17, -9], abs=0.01)
    assert offset.spread <= 1 and offset.convincing(max_spread=3.0)


def test_quadrants_beyond_the_refinements_reach_are_not_convincing():
    clear = dict(shift=np.zeros(2), peak=0.5, second=0.3)
    assert Offset(**clear, spread=2.5).convincing(max_spread=3.0)
    assert not Offset(**clear, spread=2.5).convincing(max_spread=2.0)
    assert not Offset(shift=np.zeros(2), peak=0.1, second=0.3, spread=0.0).convincing(max_spread=3.0)
    assert not Offset(shift=np.zeros(2), peak=0.5, second=0.9, spread=0.0).convincing(max_spread=3.0)


def test_locates_the_peak_between_pixels(scene):
    chip = _image(scene, 300, 300, 700)
    target = _image(scene, 400 + 17, 400 - 9, 256)
    # A claim 0.4 px east and 0.3 px south of a whole pixel: the content sits 16.6 px east, 8.7 px north of it.
    offset = find_offset(target, chip, geometry.translation(100.4, 99.7), margin_px=40)
    assert offset.shift == pytest.approx([16.6, -8.7], abs=0.05)


def test_a_margin_far_beyond_the_chip_searches_the_chip_only(scene):
    chip = _image(scene, 300, 300, 700)
    target = _image(scene, 400 + 17, 400 - 9, 256)
    # A margin of 10 million pixels once asked for a grid of terabytes; beyond 600 px (the chip's 344 px
    # beyond the target, plus the target's 256) the target no longer overlaps the chip.
    near = find_offset(target, chip, geometry.translation(100, 100), margin_px=600)
    far = find_offset(target, chip, geometry.translation(100, 100), margin_px=1e7)
    assert far.shift == pytest.approx(near.shift, abs=1e-6) and far.peak == pytest.approx(near.peak)
    assert far.shift == pytest.approx([17, -9], abs=0.01)
