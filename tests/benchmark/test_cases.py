import json

import numpy as np
import pytest
import rasterio
from conftest import S2_SEASONS

from georef import geometry
from georef.benchmark.cases import (
    CaseSpec,
    WarpSpec,
    build_cases,
    make_shift_case,
    make_warp_case,
    s2_seasons_pairs,
    warp_pixels,
)
from georef.benchmark.metrics import check_point_rmse, corner_error, summarise
from georef.fitting import fit_transform


def test_warp_pixels_moves_content_by_the_transform():
    image = np.zeros((1, 64, 64), np.uint8)
    image[0, 10, 20] = 255  # pixel centre at raster (20.5, 10.5)
    warped, valid = warp_pixels(image, geometry.translation(5, 3))
    assert np.unravel_index(warped[0].argmax(), warped[0].shape) == (13, 25)
    assert not valid[:3].any() and valid[10:50, 10:50].all()


def test_metric_of_exact_correspondences_is_zero_and_of_a_shift_is_the_shift():
    truth = geometry.to_matrix(rasterio.Affine(10, 0, 5e5, 0, -10, 5e6)) @ geometry.similarity_about((256, 256), 1.3, 1.01)
    rng = np.random.default_rng(0)
    px = rng.uniform(0, 512, (50, 2))
    fit = fit_transform(px, geometry.apply(truth, px), "affine", threshold=0.5)  # exact matches
    assert corner_error(fit.matrix, truth, 512, 512) < 1e-6
    assert check_point_rmse(fit.matrix, truth, 512, 512) < 1e-6
    shifted = geometry.translation(30, -40) @ truth
    assert corner_error(shifted, truth, 512, 512) == pytest.approx(50.0)
    assert check_point_rmse(shifted, truth, 512, 512) == pytest.approx(50.0)


def test_summary_counts_wrong_but_accepted():
    s = summarise(np.array([0.2, 0.8, 2.0, 4.0, np.nan]), np.array([True, True, False, True, False]), np.ones(5))
    assert s["within_0.5px"] == 0.2 and s["within_1px"] == 0.4 and s["within_3px"] == 0.6
    assert s["wrong_but_accepted"] == 1 and s["accepted"] == 3 and s["cases"] == 5
    # A refused right answer is within 1 px, but the user was given nothing.
    refused = summarise(np.array([0.2, 0.8]), np.array([True, False]), np.ones(2))
    assert refused["within_1px"] == 1.0 and refused["accepted_within_1px"] == 0.5


def test_summary_gives_the_median_in_metres_where_pixels_differ_in_size():
    # 30 m pixels: 0.5 px is 15 m; a case with no fit counts as infinitely far, as in pixels.
    s = summarise(np.array([0.5, 1.0, np.nan]), np.ones(3, bool), np.ones(3), errors_m=np.array([15.0, 30.0, np.nan]))
    assert s["median_px"] == 1.0 and s["median_m"] == 30.0
    assert "median_m" not in summarise(np.array([0.5]), np.ones(1, bool), np.ones(1))


@pytest.mark.realdata
def test_pairs_follow_the_manifest():
    pairs = s2_seasons_pairs(S2_SEASONS, [("winter", "summer"), ("summer_prev", "summer")])
    assert len(pairs) == 60
    manifest = json.loads((S2_SEASONS / "manifest.json").read_text())
    p = next(p for p in pairs if p.tile == "T36UUA" and p.file == "tile_0_1024.png")
    ul_x, ul_y = manifest["tiles"]["T36UUA"]["tile_ul"]
    assert (p.geotransform.c, p.geotransform.f) == (ul_x, ul_y - 10 * 1024)
    assert p.crs.to_epsg() == 32636


@pytest.mark.realdata
def test_warp_case_truth_is_consistent_with_the_pixels(tmp_path):
    """Same-season case: warping summer by A and aligning with summer must recover T @ inv(A)."""
    pair = s2_seasons_pairs(S2_SEASONS, [("summer", "summer")], ["T35UNQ"])[0]
    case = make_warp_case(pair, tmp_path, WarpSpec(), seed=1)
    from georef import estimate_alignment

    result = estimate_alignment(case.target, case.reference)
    assert corner_error(result.transform, case.truth, 512, 512) / 10 < 0.3


@pytest.mark.realdata
def test_season_pairs_sharing_a_target_season_keep_their_own_warped_target(tmp_path):
    spec = CaseSpec(seasons=(("winter", "summer"), ("winter", "summer_prev")), tiles=("T35UNQ",), limit=2)
    first, second = build_cases(S2_SEASONS, tmp_path, spec)
    assert first.target != second.target and not np.allclose(first.truth, second.truth)
    with rasterio.open(first.target) as a, rasterio.open(second.target) as b:
        assert not np.array_equal(a.read(), b.read())


@pytest.mark.realdata
def test_identity_case_scores_below_a_tenth_of_a_pixel(tmp_path):
    pair = s2_seasons_pairs(S2_SEASONS, [("summer", "summer")], ["T36UUA"])[0]
    case = make_shift_case(pair, tmp_path, max_shift_m=0.0)
    from georef import estimate_alignment

    result = estimate_alignment(case.target, case.reference)
    assert corner_error(result.transform, case.truth, 512, 512) / 10 < 0.1
