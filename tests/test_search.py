import numpy as np
import pytest
import rasterio
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


def test_a_target_of_unknown_orientation_is_found_in_its_quarter_turn(tmp_path, scene):
    ref = write_tif(tmp_path / "ref.tif", scene.data, scene.transform, scene.crs)
    data, truth = crop(scene, 900, 700, 600)
    turned = write_tif(tmp_path / "turned.tif", np.ascontiguousarray(np.rot90(data, axes=(1, 2))), None, None)
    result = estimate_alignment(turned, ref, AlignOptions(rotation_search=True))
    # np.rot90: the turned raster's (x, y) is the crop's (600 - y, x)
    true_turned = geometry.to_matrix(truth * Affine(0, -1, 600, 1, 0, 0))
    assert result.quality.passed and geometry.mean_corner_distance(result.transform, true_turned, 600, 600) / 10 < 0.5


def test_a_target_without_georeference_takes_the_crs_given_not_a_geographic_reference_s(tmp_path, scene, caplog):
    from rasterio.warp import Resampling, calculate_default_transform, reproject

    height, width = scene.data.shape[1:]
    transform, w, h = calculate_default_transform(scene.crs, "EPSG:4326", width, height,
                                                  *rasterio.transform.array_bounds(height, width, scene.transform))
    lonlat = np.zeros((3, h, w), scene.data.dtype)
    reproject(scene.data, lonlat, src_transform=scene.transform, src_crs=scene.crs, dst_transform=transform,
              dst_crs="EPSG:4326", resampling=Resampling.cubic)
    ref = write_tif(tmp_path / "ref4326.tif", lonlat, transform, "EPSG:4326")
    data, truth = crop(scene, 900, 700, 600)
    plain = write_tif(tmp_path / "plain.tif", data, None, None)
    bent = estimate_alignment(plain, ref)  # an affine in degrees: the grid's bend is left at the corners
    assert "give it a projected CRS" in caplog.text and f"EPSG:{scene.crs.to_epsg()}" in caplog.text
    result = estimate_alignment(plain, ref, AlignOptions(target_crs=scene.crs.to_string()))
    assert bent.crs.is_geographic and result.crs == scene.crs
    assert geometry.mean_corner_distance(result.transform, geometry.to_matrix(truth), 600, 600) / 10 < 0.1


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


@pytest.mark.parametrize("factor", [1, 3], ids=["10 m", "30 m"])
def test_a_fit_beyond_the_margin_is_read_again_where_it_puts_the_target(tmp_path, scene, factor):
    # 1.1 km off: the default margin's chip holds part of the target, whose fit reaches beyond it. The
    # scene read around that fit holds all of it and convinces: no search of the wider area is needed
    # (one that at a snowy or coarse target finds too few matches: the benchmark's 30 m targets moved
    # by up to 2 km were refused as lying outside the margin).
    import cv2

    ref = write_tif(tmp_path / "ref.tif", scene.data, scene.transform, scene.crs)
    data, truth = crop(scene, 600, 600, 510)
    side = 510 // factor
    data = np.stack([cv2.resize(b, (side, side), interpolation=cv2.INTER_AREA) for b in data])
    truth = truth * Affine.scale(factor)
    off = write_tif(tmp_path / "off.tif", data, Affine.translation(1100, -300) * truth, scene.crs)
    result = estimate_alignment(off, ref)
    error = geometry.mean_corner_distance(result.transform, geometry.to_matrix(truth), side, side) / (10 * factor)
    assert result.quality.passed and error < 0.5
    assert result.search.how == "widened around the claimed georeference" and result.search.radius_m == 2500
    assert "search" not in result.timings


def test_a_coarse_target_is_searched_for_enlarged_as_it_is_matched(tmp_path, scene):
    # A 30 m target of 170 px is matched at about the reference's 10 m (georef.raster.working_pixel), not
    # as a thumbnail: the search's answer is known to a few of those pixels.
    import cv2
    import rasterio

    from georef import raster, search
    from georef.options import AlignOptions as Options

    ref = write_tif(tmp_path / "ref.tif", scene.data, scene.transform, scene.crs)
    data, truth = crop(scene, 600, 600, 510)
    data = np.stack([cv2.resize(b, (170, 170), interpolation=cv2.INTER_AREA) for b in data])
    plain = write_tif(tmp_path / "plain.tif", data, None, None)
    x, y = truth * (255, 255)
    box = (x - 4000, y - 4000, x + 4000, y + 4000)
    with rasterio.open(plain) as tgt, rasterio.open(ref) as ref_ds:
        sources = raster.Sources(str(plain), str(ref), [1, 2, 3], [1, 2, 3], None, None)
        found, uncertainty_m = search.global_search(tgt, ref_ds, sources, Options(), 30.0, around=(box, 2500.0))
    assert uncertainty_m < 8 * 15  # eight search pixels of about 10 m, not of 30 m
    true_30m = geometry.to_matrix(truth * Affine.scale(3))
    assert geometry.mean_corner_distance(found.pixel_to_map, true_30m, 170, 170) < uncertainty_m
