import hashlib

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.enums import ColorInterp

from georef import geometry
from georef import OutputOptions, align_file, estimate_alignment
from georef.write import write_aligned

from conftest import crop, write_tif


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_output_keeps_pixels_and_metadata(tmp_path, scene, pair):
    data, truth = crop(scene, 700, 650, 512)
    data = data.copy()
    data[:, :40, :40] = 0
    target = write_tif(tmp_path / "meta.tif", data, Affine.translation(120, -70) * truth, scene.crs, nodata=0)
    with rasterio.open(target, "r+") as ds:
        ds.update_tags(SENSOR="S2B", DATE="2024-01-15")
        ds.update_tags(2, WAVELENGTH="560")
        ds.set_band_description(1, "B04")
        ds.colorinterp = [ColorInterp.red, ColorInterp.green, ColorInterp.blue]
    before = _digest(target)
    out = tmp_path / "aligned.tif"
    result = align_file(target, pair.reference, OutputOptions(output=out))
    assert _digest(target) == before  # input untouched
    with rasterio.open(target) as src, rasterio.open(out) as dst:
        np.testing.assert_array_equal(src.read(), dst.read())
        assert dst.dtypes == src.dtypes and dst.nodata == 0 and dst.count == 3
        assert dst.colorinterp == src.colorinterp
        assert dst.tags()["SENSOR"] == "S2B" and dst.tags(2)["WAVELENGTH"] == "560"
        assert dst.descriptions[0] == "B04"
        assert dst.crs == scene.crs
        np.testing.assert_allclose(geometry.to_matrix(dst.transform), result.transform)
        assert geometry.mean_corner_distance(geometry.to_matrix(dst.transform), geometry.to_matrix(truth), 512, 512) < 3


def test_a_palette_keeps_its_colours_and_is_warped_without_inventing_any(tmp_path, scene, pair):
    data, truth = crop(scene, 700, 650, 512)
    indexes = np.clip(data[:1] / data[0].max() * 63, 0, 63).astype(np.uint8) * 4  # 64 of 256 entries used
    target = write_tif(tmp_path / "palette.tif", indexes, Affine.translation(120, -70) * truth, scene.crs)
    table = {i: (i, 255 - i, (7 * i) % 256, 255) for i in range(256)}
    with rasterio.open(target, "r+") as ds:
        ds.write_colormap(1, table)
    for options in (OutputOptions(output=tmp_path / "aligned.tif"),
                    OutputOptions(output=tmp_path / "warped.tif", warp=True, resampling="cubic")):
        align_file(target, pair.reference, options)
        with rasterio.open(options.output) as dst:
            assert dst.colorinterp == (ColorInterp.palette,) and dst.colormap(1) == table
            assert set(np.unique(dst.read(1))) <= set(np.unique(indexes)) | {0}  # no colour in between


def test_gcps_are_embedded_instead_of_a_geotransform(tmp_path, pair):
    result = estimate_alignment(pair.target, pair.reference)
    out = write_aligned(pair.target, tmp_path / "gcps.tif", result, gcps=16)
    with rasterio.open(out) as ds:
        gcps, crs = ds.gcps
        assert ds.transform.is_identity
    assert len(gcps) == 16 and crs == result.crs
    px = np.array([[g.col, g.row] for g in gcps])
    xy = np.array([[g.x, g.y] for g in gcps])
    np.testing.assert_allclose(xy, geometry.apply(result.transform, px), atol=1e-6)
    assert np.ptp(px[:, 0]) > 300 and np.ptp(px[:, 1]) > 300  # well spread
    # GDAL's warper derives the same georeference from them
    from rasterio.warp import calculate_default_transform

    t, w, h = calculate_default_transform(crs, crs, 512, 512, gcps=gcps, resolution=10)
    corner = geometry.apply(result.transform, [[0, 0]])[0]
    assert abs(t.c - corner[0]) < 10 and abs(t.f - corner[1]) < 10


def test_failed_write_leaves_nothing(tmp_path, pair, monkeypatch):
    result = estimate_alignment(pair.target, pair.reference)
    out = tmp_path / "outputs" / "out.tif"

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(rasterio.io.DatasetWriter, "write", boom)
    with pytest.raises(OSError, match="disk full"):
        write_aligned(pair.target, out, result)
    assert list(out.parent.iterdir()) == []
