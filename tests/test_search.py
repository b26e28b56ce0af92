import numpy as np
import pytest
from affine import Affine
from rasterio.warp import transform as transform_coords

from georef import geometry
from georef import AlignOptions, estimate_alignment

from conftest import crop, write_tif


def test_target_without_georeference_is_found(tmp_path, scene):
    ref = write_tif(tmp_path / "ref.tif", scene.data, scene.transform, scene.crs)
    data, truth = crop(scene, 900, 700, 600)
    plain = write_tif(tmp_path / "plain.tif", data, None, None)
    result = estimate_alignment(plain, ref)
    assert result.quality.passed and "search" in result.timings
    error = geometry.mean_corner_distance(result.transform, geometry.to_matrix(truth), 600, 600) / 10
    assert error < 0.5


def test_target_of_unknown_coarser_resolution_is_found(tmp_path, scene):
    import cv2

    ref = write_tif(tmp_path / "ref.tif", scene.data, scene.transform, scene.crs)
    data, truth = crop(scene, 500, 400, 1200)
    half = np.stack([cv2.resize(b, (600, 600), interpolation=cv2.INTER_AREA) for b in data])  # 20 m pixels
    plain = write_tif(tmp_path / "plain20.tif", half, None, None)
    result = estimate_alignment(plain, ref)
    true_20m = geometry.to_matrix(truth * Affine.scale(2))
    error_m = geometry.mean_corner_distance(result.transform, true_20m, 600, 600)
    assert result.quality.passed and error_m < 10
    assert result.metres_per_px == pytest.approx(20, rel=0.02)


def test_wildly_wrong_georeference_with_global_search_and_approx_center(tmp_path, scene):
    ref = write_tif(tmp_path / "ref.tif", scene.data, scene.transform, scene.crs)
    data, truth = crop(scene, 1100, 1000, 500)
    far = write_tif(tmp_path / "far.tif", data, Affine.translation(-9000, 7000) * truth, scene.crs)
    x, y = truth * (250, 250)
    (lon,), (lat,) = transform_coords(scene.crs, "EPSG:4326", [x + 2000], [y - 1500])  # 2.5 km off: approximate
    result = estimate_alignment(far, ref, AlignOptions(global_search=True, approx_center=(lon, lat)))
    error = geometry.mean_corner_distance(result.transform, geometry.to_matrix(truth), 500, 500) / 10
    assert result.quality.passed and error < 0.5


@pytest.mark.parametrize("offset_m", [(1500, -1000), (-2900, 2000)], ids=["1.8 km", "3.5 km"])
def test_an_offset_of_kilometres_is_found_by_widening_the_search(tmp_path, scene, offset_m):
    # 3.5 km: the 2500 m search finds the target at its edge (2900 m off on x) and the next radius
    # must confirm it, not the gate refuse it as lying outside the area searched.
    ref = write_tif(tmp_path / "ref.tif", scene.data, scene.transform, scene.crs)
    data, truth = crop(scene, 700, 700, 500)
    off = write_tif(tmp_path / "off.tif", data, Affine.translation(*offset_m) * truth, scene.crs)
    result = estimate_alignment(off, ref)
    error = geometry.mean_corner_distance(result.transform, geometry.to_matrix(truth), 500, 500) / 10
    assert result.quality.passed and error < 0.5
    assert result.search.how == "widened around the claimed georeference"
    assert result.search.radius_m >= max(map(abs, offset_m))
