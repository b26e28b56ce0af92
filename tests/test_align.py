import csv
import json
import runpy

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.warp import Resampling, calculate_default_transform, reproject

from georef import geometry, warping
from georef import Alignment, AlignOptions, OutputOptions, QualityGate, align_file, estimate_alignment
from georef.errors import MissingGeoreference, OutputExistsError, QualityGateFailed
from georef.options import RefineOptions

from conftest import REPO, crop, write_tif


def corner_error_px(transform: np.ndarray, truth: Affine, size: int, pixel: float = 10.0) -> float:
    return geometry.mean_corner_distance(transform, geometry.to_matrix(truth), size, size) / pixel


def test_recovers_a_shifted_georeference(pair):
    result = estimate_alignment(pair.target, pair.reference)
    assert corner_error_px(result.transform, pair.truth, pair.size) < 0.3
    q = result.quality
    assert q.passed and q.inliers >= 100 and q.coverage >= 0.75
    assert q.rmse_m == pytest.approx(q.rmse_px * 10, rel=1e-6)
    assert result.path == "correlation" and set(result.timings) == {"read", "correlate", "refine"}
    assert result.refinement["inliers"] >= 12
    assert result.accuracy is not None and result.accuracy.ce90_px < 1.0


def test_the_matcher_path_finds_the_same_shift(pair):
    result = estimate_alignment(pair.target, pair.reference, AlignOptions(correlation_first=False))
    assert result.path == "keypoints" and set(result.timings) == {"read", "match", "fit", "refine"}
    assert corner_error_px(result.transform, pair.truth, pair.size) < 0.3


@pytest.mark.parametrize("model", ["shift", "similarity", "affine", "homography"])
def test_every_model_recovers_the_shift(pair, model):
    result = estimate_alignment(pair.target, pair.reference, AlignOptions(model=model))
    assert corner_error_px(result.geotransform, pair.truth, pair.size) < 0.5


def test_recovers_a_rotated_georeference(tmp_path, scene):
    ref_data, ref_t = crop(scene, 400, 400, 1000)
    tgt_data, truth = crop(scene, 650, 650, 512)
    centre = tuple(geometry.apply(geometry.to_matrix(truth), [[256, 256]])[0])
    wrong = Affine.translation(-200, 150) * Affine.rotation(2.0, pivot=centre) * truth
    ref = write_tif(tmp_path / "ref.tif", ref_data, ref_t, scene.crs)
    tgt = write_tif(tmp_path / "tgt.tif", tgt_data, wrong, scene.crs)
    result = estimate_alignment(tgt, ref)
    assert corner_error_px(result.transform, truth, 512) < 0.3
    assert result.path == "keypoints"  # turned beyond what the refinement captures from one shift


@pytest.mark.parametrize("correlation_first", [True, False])
def test_a_small_target_has_its_disagreement_measured_in_windows_of_the_ground_size(tmp_path, scene, monkeypatch,
                                                                                      correlation_first):
    # The refinement fits 32 px windows into a 256 px target; the estimate's disagreement is measured in
    # the 64 px windows of a 512 px one, on both paths.
    from georef import accuracy

    seen, original = [], accuracy.estimate

    def estimate(*args, **kwargs):
        seen.append(kwargs["content"])
        return original(*args, **kwargs)

    monkeypatch.setattr(accuracy, "estimate", estimate)
    ref_data, ref_t = crop(scene, 500, 500, 900)
    tgt_data, truth = crop(scene, 700, 650, 256)
    ref = write_tif(tmp_path / "ref.tif", ref_data, ref_t, scene.crs)
    tgt = write_tif(tmp_path / "tgt.tif", tgt_data, Affine.translation(120, -70) * truth, scene.crs)
    result = estimate_alignment(tgt, ref, AlignOptions(correlation_first=correlation_first))
    assert result.path == ("correlation" if correlation_first else "keypoints")
    assert corner_error_px(result.transform, truth, 256) < 0.3 and result.quality.passed
    content_px = seen[-1][0]
    assert len(content_px) >= 25 and np.all(np.diff(np.unique(content_px[:, 0])) == 32)
    big_data, big_truth = crop(scene, 700, 650, 512)
    big = write_tif(tmp_path / "big.tif", big_data, Affine.translation(120, -70) * big_truth, scene.crs)
    estimate_alignment(big, ref, AlignOptions(correlation_first=correlation_first))
    assert seen[-1] is None  # 512 px: the refinement's own windows are of the ground size


def test_reference_at_another_resolution(tmp_path, scene):
    """A 20 m reference: the chip is resampled to the 10 m target."""
    ref_data, ref_t = crop(scene, 400, 400, 1000)
    coarse = ref_data.reshape(3, 500, 2, 500, 2).mean(axis=(2, 4)).astype(np.uint16)
    ref = write_tif(tmp_path / "ref20.tif", coarse, ref_t * Affine.scale(2), scene.crs)
    tgt_data, truth = crop(scene, 650, 650, 512)
    tgt = write_tif(tmp_path / "tgt.tif", tgt_data, Affine.translation(90, 60) * truth, scene.crs)
    result = estimate_alignment(tgt, ref)
    assert corner_error_px(result.transform, truth, 512) < 1.0


def test_a_real_60_m_band_as_reference_is_accepted_within_a_target_pixel(tmp_path):
    """A 10 m crop against the scene's own 60 m band (B01): the estimate and the tie points' RMSE limit count
    the reference's pixels (both refused it when reckoned in target pixels: 2.8 px, RMSE 2.8 px > 1.5 px)."""
    make = runpy.run_path(str(REPO / "samples" / "make_band_pairs.py"))["make_pairs"]
    with open(make(tmp_path)) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 54
    row = next(r for r in rows if r["target"].endswith("b04_crop0.tif") and r["reference"].endswith("s2_B01.jp2"))
    truth = Affine(*(float(row[k]) for k in "abcdef"))
    result = estimate_alignment(row["target"], row["reference"])
    assert result.quality.passed, result.quality.reasons
    error = corner_error_px(result.transform, truth, 512)
    assert error < 1.0 and error <= result.accuracy.ce90_px < 2.0


@pytest.mark.parametrize("epsg", [32617, 3857])
def test_reference_in_another_crs(tmp_path, scene, epsg):
    """The reference is read in the target's CRS, where the output lands too: no bend between the two."""
    ref_data, ref_t = crop(scene, 300, 300, 1200)
    dst_crs = CRS.from_epsg(epsg)
    transform, w, h = calculate_default_transform(scene.crs, dst_crs, 1200, 1200,
                                                  *rasterio.transform.array_bounds(1200, 1200, ref_t))
    warped = np.zeros((3, h, w), np.uint16)
    reproject(ref_data, warped, src_transform=ref_t, src_crs=scene.crs, dst_transform=transform,
              dst_crs=dst_crs, resampling=Resampling.cubic, src_nodata=0, dst_nodata=0)
    ref = write_tif(tmp_path / "ref_utm17.tif", warped, transform, dst_crs, nodata=0)
    tgt_data, truth = crop(scene, 650, 650, 512)
    tgt = write_tif(tmp_path / "tgt.tif", tgt_data, Affine.translation(100, -80) * truth, scene.crs)
    result = estimate_alignment(tgt, ref)
    assert result.crs == scene.crs and result.quality.passed
    assert corner_error_px(result.transform, truth, 512) < 0.2


def test_a_long_target_against_a_web_mercator_reference_does_not_bend(tmp_path, scene):
    """19 km of UTM against Web Mercator: one transform into the reference's CRS is off by pixels."""
    mercator = CRS.from_epsg(3857)
    transform, w, h = calculate_default_transform(scene.crs, mercator, scene.data.shape[2], scene.data.shape[1],
                                                  *rasterio.transform.array_bounds(*scene.data.shape[1:], scene.transform))
    warped = np.zeros((3, h, w), np.uint16)
    reproject(scene.data, warped, src_transform=scene.transform, src_crs=scene.crs, dst_transform=transform,
              dst_crs=mercator, resampling=Resampling.cubic, dst_nodata=0)
    ref = write_tif(tmp_path / "mercator.tif", warped, transform, mercator, nodata=0)
    data, truth = scene.data[:, 20:1920, 800:1100], scene.transform * Affine.translation(800, 20)
    tgt = write_tif(tmp_path / "strip.tif", data, Affine.translation(150, -90) * truth, scene.crs)
    result = estimate_alignment(tgt, ref, AlignOptions(refine=RefineOptions(enabled=False)))
    grid = np.array([(x, y) for x in np.linspace(0, 300, 4) for y in np.linspace(0, 1900, 12)])
    error = np.linalg.norm(geometry.apply(result.transform, grid) - geometry.apply(geometry.to_matrix(truth), grid),
                           axis=1) / 10
    assert result.crs == scene.crs and error.max() < 0.3, error.max()


def test_a_reference_with_a_rotated_geotransform(tmp_path, scene):
    ref_t = scene.transform * Affine.translation(300, 300) * Affine.rotation(12)
    rotated = np.zeros((3, 1000, 1000), np.uint16)
    reproject(scene.data, rotated, src_transform=scene.transform, src_crs=scene.crs, dst_transform=ref_t,
              dst_crs=scene.crs, resampling=Resampling.cubic, dst_nodata=0)
    ref = write_tif(tmp_path / "rotated.tif", rotated, ref_t, scene.crs, nodata=0)
    tgt_data, truth = crop(scene, 700, 650, 512)
    tgt = write_tif(tmp_path / "tgt.tif", tgt_data, Affine.translation(100, -80) * truth, scene.crs)
    result = estimate_alignment(tgt, ref)
    assert result.quality.passed and corner_error_px(result.transform, truth, 512) < 0.2


def test_alignment_round_trips_through_json(pair):
    result = estimate_alignment(pair.target, pair.reference)
    again = Alignment.from_dict(json.loads(json.dumps(result.to_dict())))
    np.testing.assert_array_equal(again.transform, result.transform)
    np.testing.assert_array_equal(again.tie_points.inlier, result.tie_points.inlier)
    assert again.quality == result.quality


def test_gate_failure_writes_report_but_no_output(pair, tmp_path):
    out, report = tmp_path / "out.tif", tmp_path / "report.json"
    opts = AlignOptions(gate=QualityGate(min_inliers=100_000))
    with pytest.raises(QualityGateFailed, match="inliers < 100000") as info:
        align_file(pair.target, pair.reference, OutputOptions(output=out, report=report), opts)
    assert info.value.alignment is not None
    assert not out.exists()
    assert json.loads(report.read_text())["status"] == "failed"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_force_writes_a_failed_result_and_says_so(pair, tmp_path):
    out, report = tmp_path / "out.tif", tmp_path / "report.json"
    opts = AlignOptions(gate=QualityGate(min_inliers=100_000))
    align_file(pair.target, pair.reference, OutputOptions(output=out, report=report, force=True), opts)
    assert out.exists()
    data = json.loads(report.read_text())
    assert data["status"] == "failed" and data["output"] == str(out)


def test_existing_output_is_refused_before_any_work(pair, tmp_path):
    out = tmp_path / "out.tif"
    out.write_bytes(b"keep me")
    with pytest.raises(OutputExistsError, match="out.tif: exists"):
        align_file(pair.target, pair.reference, OutputOptions(output=out))
    assert out.read_bytes() == b"keep me"


@pytest.mark.parametrize("turns", [1, 2])
def test_rotation_search_finds_a_turned_target(tmp_path, scene, turns):
    """A target stored turned by 90 or 180 degrees (its geotransform north-up but wrong)."""
    ref_data, ref_t = crop(scene, 400, 400, 1000)
    tgt_data, truth = crop(scene, 650, 650, 512)
    turned = np.ascontiguousarray(np.rot90(tgt_data, turns, axes=(1, 2)))
    ref = write_tif(tmp_path / "ref.tif", ref_data, ref_t, scene.crs)
    tgt = write_tif(tmp_path / "turned.tif", turned, Affine.translation(60, -40) * truth, scene.crs)
    result = estimate_alignment(tgt, ref, AlignOptions(rotation_search=True, max_shift_m=600))
    # the stored pixel (x, y) shows the ground of the unturned pixel given by inverse np.rot90
    true = geometry.to_matrix(truth)
    for _ in range(turns):  # stored (x, y) -> unturned (512 - y, x), per quarter turn
        true = true @ np.array([[0.0, -1.0, 512], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    assert geometry.mean_corner_distance(result.transform, true, 512, 512) / 10 < 0.5
    assert result.quality.passed


def _repeating_pair(tmp_path, claim_px: tuple[float, float]):
    """A 1024 px reference of one texture repeating every 37 px across and 53 px down, and a 512 px crop of it
    claiming to lie ``claim_px`` from where it does. Returns the paths and the crop's true geotransform."""
    import cv2

    rng = np.random.default_rng(3)
    tile = cv2.GaussianBlur(rng.random((53, 37, 3)).astype(np.float32), (0, 0), 1.2)
    pattern = np.tile(tile, (20, 28, 1))[:1024, :1024].transpose(2, 0, 1)
    data = (20 + 200 * (pattern - pattern.min()) / np.ptp(pattern)).astype(np.uint8)
    crs, ref_t = CRS.from_epsg(32635), Affine(10, 0, 500000, 0, -10, 5500000)
    truth = ref_t * Affine.translation(260, 230)
    target = data[:, 230:742, 260:772]
    noisy = np.clip(target + rng.normal(0, 4, target.shape), 0, 255).astype(np.uint8)
    return (write_tif(tmp_path / "tgt.tif", noisy, truth * Affine.translation(*claim_px), crs),
            write_tif(tmp_path / "ref.tif", data, ref_t, crs), truth)


@pytest.mark.parametrize("correlation_first", [True, False])
def test_content_that_repeats_within_the_search_is_refused(tmp_path, correlation_first):
    target, reference, _ = _repeating_pair(tmp_path, (-25, 18))
    result = estimate_alignment(target, reference, AlignOptions(correlation_first=correlation_first))
    assert not result.quality.passed and result.quality.repeat > 0.9
    assert any("its content repeats 370 m away" in r or "its content repeats 530 m away" in r
               for r in result.quality.reasons)


def test_a_search_narrower_than_half_the_period_takes_the_repeat_in_reach(tmp_path):
    target, reference, truth = _repeating_pair(tmp_path, (-8, 6))
    result = estimate_alignment(target, reference, AlignOptions(max_shift_m=150.0))
    assert result.quality.passed and result.quality.repeat < 0.3
    assert corner_error_px(result.transform, truth, 512) < 0.3


def test_a_reference_with_a_world_file_and_no_crs_takes_the_one_given(tmp_path, scene, pair):
    ref_data, ref_transform = crop(scene, 500, 500, 900)
    reference = write_tif(tmp_path / "nocrs.tif", ref_data, ref_transform, None)
    with pytest.raises(MissingGeoreference, match="reference has no CRS; give it with reference_crs"):
        estimate_alignment(pair.target, reference)
    result = estimate_alignment(pair.target, reference, AlignOptions(reference_crs=scene.crs.to_string()))
    assert result.quality.passed and corner_error_px(result.transform, pair.truth, 512) < 0.2
    # its own grid is read as it is, not resampled
    with warping.reference_in_crs(str(reference), None, assumed=scene.crs.to_string()) as (path, _):
        with rasterio.open(path) as vrt:
            assert vrt.crs == scene.crs and vrt.transform == ref_transform
            np.testing.assert_array_equal(vrt.read([1, 2, 3]), ref_data)


def _reoriented(path, out, how):
    """The raster's pixels mirrored top to bottom ("south-up") or turned by 90 degrees ("turned"), its
    geotransform changed to match: the same map, other rows and columns."""
    with rasterio.open(path) as src:
        profile, data, t = src.profile, src.read(), src.transform
    h, w = data.shape[1:]
    if how == "south-up":
        data, to_old = data[:, ::-1], Affine(1, 0, 0, 0, -1, h)
    else:
        data, to_old = np.rot90(data, axes=(1, 2)), Affine(0, -1, w, 1, 0, 0)  # new (x, y) is old (w - y, x)
    with rasterio.open(out, "w", **dict(profile, width=data.shape[2], height=data.shape[1],
                                        transform=t * to_old)) as dst:
        dst.write(np.ascontiguousarray(data))
    return out, to_old


@pytest.mark.parametrize("which, how, max_size", [("target", "south-up", 2048), ("target", "turned", 2048),
                                                   ("reference", "south-up", 2048),
                                                   ("target", "south-up", 256)])  # windows of a large target
def test_a_mirrored_or_turned_georeference_is_matched_as_a_map_shows_it(tmp_path, pair, which, how, max_size):
    target, reference, truth = pair.target, pair.reference, pair.truth
    if which == "target":
        target, to_old = _reoriented(target, tmp_path / "target.tif", how)
        truth = truth * to_old
    else:
        reference, _ = _reoriented(reference, tmp_path / "reference.tif", how)
    # the feature matcher's path: the correlation's resamples the chip through the claimed geotransform anyway
    result = estimate_alignment(target, reference, AlignOptions(correlation_first=False, max_size=max_size))
    assert result.quality.passed and corner_error_px(result.transform, truth, 512) < 0.2
