import cv2
import numpy as np
import pytest
import rasterio

from georef import geometry
from georef import AlignOptions, OutputOptions, align_file, estimate_alignment
from georef.fitting import compare_models, fit_warp_robust, held_out_errors
from georef.refine import measure_windows
from georef.transforms import Polynomial, ThinPlateSpline

from conftest import crop, write_tif


def _bend(points: np.ndarray) -> np.ndarray:
    """A smooth order-2 distortion: up to about 4 px at the corners of a 512 px image."""
    x, y = (points[:, 0] - 256) / 256, (points[:, 1] - 256) / 256
    return points + np.column_stack([2.0 * x * y + 1.5 * y**2, -2.0 * x**2 + 1.0 * x * y])


def test_polynomial_of_its_own_order_is_exact():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 512, (60, 2))
    model = Polynomial.fit(src, _bend(src), 2)
    grid = geometry.grid_points(512, 512, 7)
    np.testing.assert_allclose(model.apply(grid), _bend(grid), atol=1e-8)


def test_thin_plate_spline_interpolates_and_extends_affinely():
    rng = np.random.default_rng(1)
    src = rng.uniform(0, 100, (30, 2))
    affine = geometry.translation(5, -3) @ geometry.similarity_about((50, 50), 10, 1.2)
    tps = ThinPlateSpline.fit(src, geometry.apply(affine, src))
    np.testing.assert_allclose(tps.apply(src), geometry.apply(affine, src), atol=1e-6)
    np.testing.assert_allclose(tps.apply([[300.0, -40.0]]), geometry.apply(affine, [[300.0, -40.0]]), atol=1e-6)


def test_held_out_errors_show_overfitting():
    rng = np.random.default_rng(2)
    src = rng.uniform(0, 512, (40, 2))
    dst = src + rng.normal(0, 1.0, src.shape)  # pure noise around the identity
    affine = held_out_errors("affine", src, dst)
    tps = held_out_errors("tps", src, dst)
    assert np.sqrt(np.mean(tps**2)) > np.sqrt(np.mean(affine**2))  # the spline chases the noise
    table = compare_models(src, dst, ("affine", "poly3", "tps"), 1.0)
    assert set(table) == {"affine", "poly3", "tps"} and table["affine"]["ce90_px"] < table["tps"]["ce90_px"]


def test_robust_fit_grows_inliers_beyond_the_affine_start():
    rng = np.random.default_rng(3)
    src = rng.uniform(0, 512, (300, 2))
    dst = _bend(src)
    dst[:30] += rng.uniform(20, 50, (30, 2))
    start = geometry.fit_affine_lstsq(src[30:], dst[30:])
    model, inliers = fit_warp_robust("poly2", src, dst, start, threshold=1.0)
    assert not inliers[:30].any() and inliers[30:].all()
    np.testing.assert_allclose(model.apply(src[30:]), dst[30:], atol=1e-6)


@pytest.fixture
def bent_pair(tmp_path, scene):
    """A target whose pixels carry a known order-2 distortion; truth(p) = T(bend(p))."""
    ref_data, ref_t = crop(scene, 500, 500, 900)
    base_data, base_t = crop(scene, 700, 650, 512)
    gx, gy = np.meshgrid(np.arange(512, dtype=np.float64), np.arange(512, dtype=np.float64))
    src = _bend(np.column_stack([gx.ravel() + 0.5, gy.ravel() + 0.5])) - 0.5  # raster -> index coordinates
    maps = src.reshape(512, 512, 2).astype(np.float32)
    bent = np.stack([cv2.remap(b.astype(np.float32), maps[..., 0], maps[..., 1], cv2.INTER_CUBIC,
                               borderMode=cv2.BORDER_REFLECT) for b in base_data]).clip(0, 65535).astype(np.uint16)
    target = write_tif(tmp_path / "bent.tif", bent, base_t, scene.crs)
    reference = write_tif(tmp_path / "ref.tif", ref_data, ref_t, scene.crs)
    truth = lambda p: geometry.apply(geometry.to_matrix(base_t), _bend(p))  # noqa: E731
    return target, reference, truth


def test_poly2_recovers_a_smooth_distortion_where_affine_cannot(bent_pair):
    target, reference, truth = bent_pair
    checks = geometry.grid_points(512, 512, 10)
    errors = {}
    for model in ("affine", "poly2"):
        result = estimate_alignment(target, reference, AlignOptions(model=model))
        errors[model] = np.linalg.norm(result.predict(checks) - truth(checks), axis=1).max() / 10
    assert errors["poly2"] < 0.5
    assert errors["affine"] > 1.5  # visibly worse


def test_poly2_warp_lands_on_the_reference_grid(bent_pair, tmp_path):
    target, reference, _ = bent_pair
    offsets = {}
    for model in ("affine", "poly2"):
        out = tmp_path / f"warped_{model}.tif"
        align_file(target, reference, OutputOptions(output=out, warp=True), AlignOptions(model=model))
        with rasterio.open(out) as w, rasterio.open(reference) as r:
            assert w.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
            assert w.crs == r.crs and w.count == 3 and w.dtypes[0] == "uint16"
            assert (w.dataset_mask() == 0).any() and (w.dataset_mask() > 0).mean() > 0.5  # outside masked
            assert w.res == r.res and ((w.transform.c - r.transform.c) / 10) % 1 == 0  # snapped to the grid
            window = rasterio.windows.from_bounds(*w.bounds, transform=r.transform)
            ref = r.read(1, window=window).astype(np.float32)
            img = w.read(1).astype(np.float32)
            valid = (w.dataset_mask() > 0) & (ref > 0)
        valid = cv2.erode(valid.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
        _, off, _, _ = measure_windows(img / img.max(), ref / ref.max(), valid, window=64, step=64)
        offsets[model] = np.abs(off).max()
    assert offsets["poly2"] < 0.5 < offsets["affine"]


def test_warp_at_another_resolution_keeps_nodata_and_bands(tmp_path, scene):
    from affine import Affine

    ref_data, ref_t = crop(scene, 500, 500, 900)
    tgt_data, truth = crop(scene, 700, 650, 512)
    tgt_data = tgt_data.copy()
    tgt_data[:, :100, :100] = 0
    reference = write_tif(tmp_path / "ref.tif", ref_data, ref_t, scene.crs)
    target = write_tif(tmp_path / "tgt.tif", tgt_data, Affine.translation(90, -60) * truth, scene.crs, nodata=0)
    out = tmp_path / "warped20.tif"
    align_file(target, reference, OutputOptions(output=out, warp=True, target_res=20.0, resampling="bilinear"))
    with rasterio.open(out) as w:
        assert w.res == (20.0, 20.0) and w.nodata == 0 and w.count == 3
        # the nodata corner of the target stays nodata where it lands
        x, y = truth * (50, 50)
        row, col = w.index(x, y)
        assert (w.read()[:, row, col] == 0).all()
        x, y = truth * (300, 300)
        row, col = w.index(x, y)
        assert (w.read()[:, row, col] > 0).all()


def test_warp_lands_on_the_grid_of_a_reference_in_another_crs(tmp_path, scene):
    """The alignment lives in the target's CRS; --warp still resamples onto the reference's grid and CRS."""
    from affine import Affine
    from rasterio.crs import CRS
    from rasterio.warp import calculate_default_transform, reproject

    mercator = CRS.from_epsg(3857)
    ref_data, ref_t = crop(scene, 500, 500, 900)
    transform, w, h = calculate_default_transform(scene.crs, mercator, 900, 900,
                                                  *rasterio.transform.array_bounds(900, 900, ref_t))
    warped = np.zeros((3, h, w), np.uint16)
    reproject(ref_data, warped, src_transform=ref_t, src_crs=scene.crs, dst_transform=transform, dst_crs=mercator,
              resampling=rasterio.enums.Resampling.cubic)
    reference = write_tif(tmp_path / "mercator.tif", warped, transform, mercator)
    tgt_data, truth = crop(scene, 700, 650, 512)
    target = write_tif(tmp_path / "tgt.tif", tgt_data, Affine.translation(90, -60) * truth, scene.crs)
    out = tmp_path / "warped.tif"
    result = align_file(target, reference, OutputOptions(output=out, warp=True))
    assert result.crs == scene.crs
    with rasterio.open(out) as aligned, rasterio.open(reference) as ref:
        assert aligned.crs == mercator and aligned.res == pytest.approx(ref.res)
        col, row = ~ref.transform * (aligned.transform.c, aligned.transform.f)
        assert col == pytest.approx(round(col), abs=1e-6) and row == pytest.approx(round(row), abs=1e-6)
        window = rasterio.windows.Window(round(col), round(row), aligned.width, aligned.height)
        mine, theirs = aligned.read(1).astype(float), ref.read(1, window=window, boundless=True).astype(float)
        inside = (aligned.dataset_mask() > 0) & (theirs > 0)
        inside = cv2.erode(inside.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
        assert np.corrcoef(mine[inside], theirs[inside])[0, 1] > 0.99

