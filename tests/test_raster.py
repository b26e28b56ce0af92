import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.crs import CRS

from georef import geometry, raster, warping
from georef.errors import BandError, EmptyDataError, MissingGeoreference, NoOverlapError, RasterReadError

from conftest import crop, write_tif


def test_normalise_uses_robust_percentiles_not_fixed_caps():
    rng = np.random.default_rng(0)
    dark = rng.integers(100, 400, (1, 64, 64)).astype(np.uint16)  # 16-bit, far below any 8-bit cap
    bright = (dark.astype(np.int32) + 9000).astype(np.uint16)
    valid = np.ones((64, 64), bool)
    a, b = raster.normalise(dark, valid), raster.normalise(bright, valid)
    np.testing.assert_allclose(a, b, atol=1e-6)  # the stretch follows the data
    assert a.min() == 0 and a.max() == 1 and 0.3 < a.mean() < 0.7


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16, np.float32])
@pytest.mark.parametrize("n", [1, 2, 7, 10_000])
def test_percentiles_equal_numpys(dtype, n):
    rng = np.random.default_rng(n)
    values = rng.integers(0, 200 if dtype == np.uint8 else 30_000, n).astype(dtype)
    q = (0.0, 2.0, 33.3, 98.0, 100.0)
    np.testing.assert_allclose(raster.percentiles(values, q), np.percentile(values.astype(np.float64), q), atol=1e-3)


def test_normalise_ignores_nodata_and_fills_it():
    data = np.full((1, 32, 32), 50, np.uint16)
    data[0, :, 16:] = np.arange(16, dtype=np.uint16) * 100 + 1000
    data[0, :4] = 65535  # nodata stripe, would dominate a min/max stretch
    valid = np.ones((32, 32), bool)
    valid[:4] = False
    out = raster.normalise(data, valid)
    assert out[4:, :16].max() == 0  # 50 is the darkest valid value
    np.testing.assert_allclose(out[:4], out[valid].mean())


def test_normalise_all_nodata_and_flat_data_raise():
    with pytest.raises(EmptyDataError, match="only nodata"):
        raster.normalise(np.zeros((1, 8, 8)), np.zeros((8, 8), bool))
    with pytest.raises(EmptyDataError, match="no contrast"):
        raster.normalise(np.full((1, 8, 8), 7), np.ones((8, 8), bool))


def test_missing_and_unreadable_files(tmp_path):
    with pytest.raises(RasterReadError, match="no such file"):
        with raster.open_raster(tmp_path / "nope.tif"):
            pass
    junk = tmp_path / "junk.tif"
    junk.write_text("not a raster")
    with pytest.raises(RasterReadError, match="junk.tif: not a raster GDAL can read"):
        with raster.open_raster(junk):
            pass


def test_band_choice(tmp_path, scene):
    data, t = crop(scene, 0, 0, 64)
    path = write_tif(tmp_path / "a.tif", data, t, scene.crs)
    with raster.open_raster(path) as ds:
        assert raster.resolve_bands(ds, None) == [1, 2, 3]
        assert raster.resolve_bands(ds, (3, 1)) == [3, 1]
        with pytest.raises(BandError, match="has no band 4 \\(it has 3\\)"):
            raster.resolve_bands(ds, (1, 4))


def test_georeference_from_world_file_without_crs(tmp_path, scene):
    data, t = crop(scene, 0, 0, 64)
    png = tmp_path / "plain.png"
    with rasterio.open(png, "w", driver="PNG", width=64, height=64, count=3, dtype="uint16") as dst:
        dst.write(data)
    png.with_suffix(".pgw").write_text("\n".join(str(v) for v in (t.a, t.d, t.b, t.e, t.c + 5, t.f - 5)))
    for leftover in tmp_path.glob("*.aux.xml"):
        leftover.unlink()
    with raster.open_raster(png) as ds:
        with pytest.raises(MissingGeoreference, match="no CRS"):
            raster.georeference(ds)
        geo = raster.georeference(ds, assume_crs=scene.crs)
    assert geo.crs == scene.crs
    np.testing.assert_allclose(geo.pixel_to_map, geometry.to_matrix(t), atol=1e-6)


def test_georeference_from_gcps_and_none(tmp_path, scene):
    from rasterio.control import GroundControlPoint

    data, t = crop(scene, 0, 0, 64)
    path = write_tif(tmp_path / "gcps.tif", data, None, None)
    gcps = [GroundControlPoint(r, c, *(geometry.apply(geometry.to_matrix(t), [[c, r]])[0]))
            for r, c in ((0, 0), (0, 64), (64, 0), (64, 64))]
    with rasterio.open(path, "r+") as ds:
        ds.gcps = (gcps, scene.crs)
    with raster.open_raster(path) as ds:
        geo = raster.georeference(ds)
    assert geo.source == "gcps"
    np.testing.assert_allclose(geo.pixel_to_map, geometry.to_matrix(t), atol=1e-6)

    bare = write_tif(tmp_path / "bare.tif", data, None, None)
    with raster.open_raster(bare) as ds, pytest.raises(MissingGeoreference, match="no georeference"):
        raster.georeference(ds)


def test_reference_chip_is_resampled_to_target_pixel_size(tmp_path, scene):
    data, t = crop(scene, 0, 0, 600)
    path = write_tif(tmp_path / "ref.tif", data, t, scene.crs)
    footprint = geometry.to_matrix(t * Affine.translation(100, 100) * Affine.scale(2))  # a 20 m target
    with raster.open_raster(path) as ds:
        chip = raster.read_reference_chip(ds, [1, 2, 3], footprint, 100, 100, 200.0, 20.0)
    # 100 px of 20 m plus 200 m each side = 2400 m = 120 px of 20 m
    assert chip.shape == (120, 120)
    np.testing.assert_allclose(abs(chip.to_world[0, 0]), 20.0)
    corner = geometry.apply(chip.to_world, [[0, 0]])[0]
    np.testing.assert_allclose(corner, geometry.apply(footprint, [[0, 0]])[0] + (-200, 200))


@pytest.mark.parametrize("pixel_size, size", [(10.0104, (200, 130)), (11.0412, (200, 130)), (9.3, (200, 130)),
                                              (10.03, (60, 400))])
def test_a_resampled_chip_has_square_pixels_whose_content_lies_where_they_say(tmp_path, monkeypatch, pixel_size,
                                                                              size):
    """Each axis rounded on its own gave a chip 0.2 % wider than tall (a similarity fitted to it sheared the
    result by 0.3 px); GDAL copies a window within a pixel of its resampled size rather than resample it,
    whole (10.0104 m) or in the strips of rows of a large read (10.03 m, 60 x 400 px)."""
    monkeypatch.setattr(raster, "STRIP_SOURCE_BYTES", 0)  # every read as large as a tile's
    xs, ys = np.meshgrid(np.arange(512) + 0.5, np.arange(480) + 0.5)
    t = Affine(10, 0, 500_000, 0, -10, 5_400_000)
    path = write_tif(tmp_path / "ramps.tif", np.stack([xs, ys]).astype(np.float32), t, CRS.from_epsg(32635))
    footprint = geometry.to_matrix(t * Affine.translation(150, 140) * Affine.scale(pixel_size / 10))
    with raster.open_raster(path) as ds:
        # Both bands read at once, as GDAL copies them; a band stretched to nothing is left out of the pixels.
        chips = [raster.read_reference_chip(ds, [1, 2], footprint, *size, 600.0, pixel_size, stretch=stretch)
                 for stretch in ([(0, 512), (0, 0)], [(0, 0), (0, 480)])]
    to_world, (h, w) = chips[0].to_world, chips[0].shape
    assert to_world[0, 0] == pytest.approx(-to_world[1, 1], rel=1e-12)  # square: within a pixel of the reference's, the reference's own
    assert abs(to_world[0, 0] / pixel_size - 1) < 1 / min(h, w)
    centres = geometry.apply(np.linalg.inv(geometry.to_matrix(t)) @ to_world,
                             np.stack(np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5), -1).reshape(-1, 2))
    measured = np.stack([chips[0].pixels * 512, chips[1].pixels * 480], -1)
    inner = (slice(2, -2), slice(2, -2))  # the ramps' ends clamp
    assert np.abs(measured - centres.reshape(h, w, 2))[inner].max() < 0.08  # reference pixels


def test_reference_chip_outside_margin_is_no_overlap(tmp_path, scene):
    data, t = crop(scene, 0, 0, 200)
    path = write_tif(tmp_path / "ref.tif", data, t, scene.crs)
    far = geometry.to_matrix(Affine.translation(50_000, 0) * t)
    with raster.open_raster(path) as ds, pytest.raises(NoOverlapError, match="within the search margin of 600 m"):
        raster.read_reference_chip(ds, [1], far, 200, 200, 600.0, 10.0)


def test_footprint_in_another_crs(scene):
    geo = raster.Georeference(geometry.to_matrix(scene.transform), scene.crs, "geotransform")
    m = raster.footprint_in(geo, 1000, 1000, CRS.from_epsg(32617))  # neighbouring UTM zone
    from rasterio.warp import transform as warp_transform

    px = np.array([[0, 0], [1000, 1000]])
    src = geometry.apply(geo.pixel_to_map, px)
    xs, ys = warp_transform(scene.crs, CRS.from_epsg(32617), src[:, 0], src[:, 1])
    np.testing.assert_allclose(geometry.apply(m, px), np.column_stack([xs, ys]), atol=1.0)


def test_a_reference_in_another_crs_is_read_in_the_target_s_with_its_mask(tmp_path, scene):
    from rasterio.warp import calculate_default_transform, reproject
    from rasterio.warp import transform as warp_transform

    data, t = crop(scene, 0, 0, 400)
    mercator = CRS.from_epsg(3857)
    transform, w, h = calculate_default_transform(scene.crs, mercator, 400, 400,
                                                  *rasterio.transform.array_bounds(400, 400, t))
    warped = np.zeros((3, h, w), np.uint16)
    reproject(data, warped, src_transform=t, src_crs=scene.crs, dst_transform=transform, dst_crs=mercator)
    ref = write_tif(tmp_path / "mercator.tif", warped, transform, mercator)  # no nodata: an alpha marks the rest
    left = np.zeros((1, h // 2, w // 2), np.uint8)  # half the resolution, no georeference: mapped by extent
    left[:, :, : w // 4] = 7
    mask = write_tif(tmp_path / "mask.tif", left, None, None)
    with warping.reference_in_crs(str(ref), mercator, f"{mask}:7") as same:
        assert same == (str(ref), f"{mask}:7")
    with warping.reference_in_crs(str(ref), scene.crs, f"{mask}:7") as (path, warped_mask):
        with rasterio.open(path) as ds:
            assert ds.crs == scene.crs and ds.count == 4 and ds.colorinterp[3].name == "alpha"
            grid = ds.transform
            outside = ds.read_masks(1) == 0
        mask_path, values = raster.ExclusionMask.split(warped_mask)
        assert values == "7"
        with rasterio.open(mask_path) as m:
            assert (m.width, m.height, m.transform) == (ds.width, ds.height, grid)
            excluded = m.read(1) == 7
    # Each pixel of the warped grid is excluded where it lies left of the reference's middle, in Mercator.
    rows, cols = np.mgrid[0:excluded.shape[0], 0:excluded.shape[1]]
    xs, ys = grid * (cols.ravel() + 0.5, rows.ravel() + 0.5)
    mx, _ = warp_transform(scene.crs, mercator, xs, ys)
    expected = (np.array(mx) < transform.c + transform.a * (w // 4) * 2).reshape(excluded.shape)
    inside = ~outside
    assert (excluded[inside] == expected[inside]).mean() > 0.99


def test_a_coarse_read_of_a_warped_reference_in_strips_equals_one_read(tmp_path, scene, monkeypatch):
    from rasterio.warp import calculate_default_transform, reproject
    from rasterio.windows import Window

    data, t = crop(scene, 0, 0, 800)
    mercator = CRS.from_epsg(3857)
    transform, w, h = calculate_default_transform(scene.crs, mercator, 800, 800,
                                                  *rasterio.transform.array_bounds(800, 800, t))
    warped = np.zeros((3, h, w), np.uint16)
    reproject(data, warped, src_transform=t, src_crs=scene.crs, dst_transform=transform, dst_crs=mercator)
    ref = write_tif(tmp_path / "mercator.tif", warped, transform, mercator)
    with warping.reference_in_crs(str(ref), scene.crs) as (path, _), rasterio.open(path) as ds:
        window, shape = Window(3, 5, ds.width - 9, ds.height - 11), (ds.height // 2, ds.width // 2)
        assert shape[0] > raster.STRIP_ROWS  # two strips
        monkeypatch.setattr(raster, "STRIP_SOURCE_BYTES", 0)  # as if the tile were large
        reads = []
        read_bands = raster._read_bands
        monkeypatch.setattr(raster, "_read_bands", lambda *args: reads.append(args[3]) or read_bands(*args))
        in_strips, valid_in_strips = raster._read(ds, [1, 2, 3], window, shape)
        assert [rows for rows, _ in reads] == [raster.STRIP_ROWS, shape[0] - raster.STRIP_ROWS]
        monkeypatch.setattr(raster, "STRIP_ROWS", 10**6)
        at_once, valid_at_once = raster._read(ds, [1, 2, 3], window, shape)
    assert (in_strips != at_once).mean() < 1e-3  # a few pixels where the strips meet
    assert (valid_in_strips != valid_at_once).mean() < 1e-3 and 0.5 < valid_at_once.mean() < 1


@pytest.mark.parametrize("masked_by", ["nodata", "alpha"])
def test_a_coarse_read_takes_its_mask_from_the_coarse_data(tmp_path, scene, masked_by):
    from rasterio.enums import ColorInterp
    from rasterio.windows import Window

    data, t = crop(scene, 0, 0, 100)
    data = data.copy()
    data[:, :, :50] = 0
    if masked_by == "alpha":
        alpha = np.full((1, 100, 100), 65535, np.uint16)
        alpha[:, :, :46] = 0  # the column of coarse pixels from 44 to 48 is half valid: out
        path = write_tif(tmp_path / "rgba.tif", np.concatenate([data, alpha]), t, scene.crs)
        with rasterio.open(path, "r+") as ds:
            ds.colorinterp = [ColorInterp.red, ColorInterp.green, ColorInterp.blue, ColorInterp.alpha]
    else:
        path = write_tif(tmp_path / "half.tif", data, t, scene.crs, nodata=0)
    with rasterio.open(path) as ds:
        _, valid = raster._read(ds, [1, 2, 3], Window(0, 0, 100, 100), (25, 25))
    # Coarse column 12 (pixels 48-51): valid by its alpha, and for nodata by its pixels 50 and 51.
    assert not valid[:, :12].any() and valid[:, 12:].all()


def test_nodata_pixels_carry_no_keypoints(tmp_path, scene):
    data, t = crop(scene, 0, 0, 128)
    data = data.copy()
    data[:, :, :64] = 0
    path = write_tif(tmp_path / "nd.tif", data, t, scene.crs, nodata=0)
    with raster.open_raster(path) as ds:
        img = raster.read_target(ds, [1, 2, 3], 128)
    assert not img.valid[:, : 64 + raster.NODATA_BORDER_PX].any()
    assert img.valid[:, 64 + raster.NODATA_BORDER_PX + 1 :].all()
