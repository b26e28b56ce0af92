import pytest

from georef.options import RefineOptions


def test_refinement_sizes_scale_with_the_image_it_runs_on():
    # A 10 m pair enlarged twice: every size doubles.
    enlarged = RefineOptions().at_scale(2.0, 1024, 2.0)
    assert enlarged.window == 128
    assert enlarged.threshold_px == pytest.approx(2.0)
    assert enlarged.max_offset_px == pytest.approx(6.0)
    assert enlarged.lowpass_sigma == pytest.approx(0.05)


def test_windows_keep_the_finer_inputs_ground_size():
    # A 20 m target against a 10 m reference, matched at 10 m: thresholds and the spectral weight are
    # in 20 m pixels, the windows in 10 m pixels (640 m, as for a 10 m pair; 1280 m gave a quarter
    # as many windows).
    coarse_target = RefineOptions().at_scale(2.0, 512, 1.0)
    assert coarse_target.window == 64
    assert coarse_target.threshold_px == pytest.approx(2.0)
    assert coarse_target.lowpass_sigma == pytest.approx(0.05)


def test_windows_fit_eight_times_into_a_small_image():
    # A 256 px crop matched enlarged to 512 px: 64 px windows, 15 across, not 128 px ones, 7 across.
    assert RefineOptions().at_scale(2.0, 512, 2.0).window == 64
    assert RefineOptions().at_scale(1.0, 200, 1.0).window == 24
    assert RefineOptions().at_scale(1.0, 100, 1.0).window == 16


@pytest.mark.parametrize("setting, message", [
    (dict(seed="x"), "seed must be an integer >= 0, not 'x'"),
    (dict(seed=-1), "seed must be an integer >= 0"),
    (dict(target_crs="EPSG:0"), "target_crs 'EPSG:0' is not a CRS"),
], ids=["seed text", "seed negative", "target_crs unknown"])
def test_python_callers_get_a_named_error_for_a_bad_setting(setting, message):
    # Both once surfaced from deep inside as a bare TypeError and rasterio's CRSError.
    from georef.errors import InvalidOption
    from georef.options import AlignOptions

    with pytest.raises(InvalidOption, match=message):
        AlignOptions(**setting).validate()
    AlignOptions(seed=3, target_crs="EPSG:32635").validate()
