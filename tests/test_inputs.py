import zipfile

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.windows import Window

from georef import geometry
from georef import AlignOptions, estimate_alignment
from georef.options import RefineOptions
from georef.errors import BandError, EmptyDataError, InvalidOption, RasterReadError
from georef.inputs import ResolvedInput, product_band_files
from georef.raster import ExclusionMask

from conftest import crop, write_tif


def _jp2(path, band, transform, crs):
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", driver="JP2OpenJPEG", width=band.shape[-1], height=band.shape[-2],
                       count=band.shape[0], dtype=band.dtype, crs=crs, transform=transform) as dst:
        dst.write(band)


@pytest.fixture
def safe(tmp_path, scene):
    """An L1C-like .SAFE folder holding a 600 px window as single-band B02/B03/B04 and a TCI, off by 80 m."""
    data, truth = crop(scene, 800, 700, 600)
    wrong = Affine.translation(80, -50) * truth
    img = tmp_path / "S2B_MSIL1C_20240101T000000_N0510_R000_T18XXX_20240101T000000.SAFE" / "GRANULE" / \
        "L1C_T18XXX_A000000_20240101T000000" / "IMG_DATA"
    for name, band in zip(("B04", "B03", "B02"), data):
        _jp2(img / f"T18XXX_20240101T000000_{name}.jp2", band[None], wrong, scene.crs)
    tci = np.clip(data / 3000 * 255, 0, 255).astype(np.uint8)
    _jp2(img / "T18XXX_20240101T000000_TCI.jp2", tci, wrong, scene.crs)
    _jp2(img / "T18XXX_20240101T000000_B8A.jp2", data[:1, ::2, ::2], wrong, scene.crs)  # a 20 m band
    return img.parents[2], truth


def test_product_bands_are_found_in_folder_and_zip(safe, tmp_path):
    folder, _ = safe
    assert [f.rsplit("_", 1)[1] for f in product_band_files(folder, "B04,B03,B02")] == ["B04.jp2", "B03.jp2",
                                                                                          "B02.jp2"]
    assert product_band_files(folder)[0].endswith("_TCI.jp2")
    with pytest.raises(BandError, match="no 10 m B05"):
        product_band_files(folder, "B05")
    archive = tmp_path / "product.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for f in folder.rglob("*.jp2"):
            z.write(f, f.relative_to(folder.parent))
    files = product_band_files(archive, "B04,B03,B02")
    assert all(f.startswith("/vsizip/") for f in files)
    with ResolvedInput(archive, "B04,B03,B02") as path, rasterio.open(path) as ds:
        assert ds.count == 3 and ds.width == 600 and ds.crs is not None


def test_not_a_product_is_a_clear_error(tmp_path):
    (tmp_path / "x.SAFE").mkdir()
    with pytest.raises(RasterReadError, match="x.SAFE: holds no IMG_DATA"):
        product_band_files(tmp_path / "x.SAFE")


@pytest.mark.parametrize("bands", ["TCI", "B04,B03,B02"])
def test_a_safe_product_aligns(safe, pair, bands, scene, tmp_path):
    folder, truth = safe
    ref = write_tif(tmp_path / "ref.tif", *crop(scene, 600, 500, 1000), scene.crs)
    result = estimate_alignment(folder, ref, AlignOptions(product_bands=bands))
    assert result.quality.passed and result.target == str(folder)
    assert geometry.mean_corner_distance(result.transform, geometry.to_matrix(truth), 600, 600) / 10 < 0.3


def test_the_scene_classification_of_an_l2a_product_masks_it(scene, pair, tmp_path):
    data, truth = crop(scene, 800, 700, 600)
    wrong = Affine.translation(80, -50) * truth
    granule = tmp_path / "S2B_MSIL2A_20240101T000000_N0510_R000_T18XXX_20240101T000000.SAFE" / "GRANULE" / \
        "L2A_T18XXX_A000000_20240101T000000" / "IMG_DATA"
    _jp2(granule / "R10m" / "T18XXX_20240101T000000_TCI_10m.jp2",
         np.clip(data / 3000 * 255, 0, 255).astype(np.uint8), wrong, scene.crs)
    classes = np.full((1, 300, 300), 4, np.uint8)  # vegetation
    classes[:, :, :150] = 9  # cloud, high probability, over the left half
    _jp2(granule / "R20m" / "T18XXX_20240101T000000_SCL_20m.jp2", classes, wrong * Affine.scale(2), scene.crs)
    product = granule.parents[2]
    options = AlignOptions(mask_target="SCL:8,9,10", refine=RefineOptions(enabled=False))
    result = estimate_alignment(product, pair.reference, options)
    assert result.quality.passed and result.tie_points.target_px[:, 0].min() > 290
    with pytest.raises(RasterReadError, match="SCL: SCL names the scene classification.*give the mask's file"):
        estimate_alignment(pair.target, pair.reference, options)
    (granule / "R20m" / "T18XXX_20240101T000000_SCL_20m.jp2").unlink()
    with pytest.raises(BandError, match="has no SCL layer"):
        estimate_alignment(product, pair.reference, options)


def test_band_files_given_together_are_stacked(tmp_path, scene):
    data, t = crop(scene, 0, 0, 64)
    files = [write_tif(tmp_path / f"b{i}.tif", data[i:i + 1], t, scene.crs) for i in range(3)]
    with ResolvedInput(",".join(map(str, files))) as path, rasterio.open(path) as ds:
        np.testing.assert_array_equal(ds.read(), data)
    other = write_tif(tmp_path / "other.tif", data[:1, :32], t, scene.crs)
    with pytest.raises(BandError, match="other.tif: is not on the grid"):
        with ResolvedInput(f"{files[0]},{other}"):
            pass


@pytest.mark.parametrize("cloud, kept, spec", [
    (9, 4, ":8,9,10"),  # a scene classification's "cloud" class; "vegetation" kept unless listed
    (0b1001, 0b1000000, ":bits=3,4"),  # QA flags: bit 3 "cloud" (and bit 0) set; bit 6 alone kept
])
def test_masked_pixels_carry_no_tie_points(pair, tmp_path, cloud, kept, spec):
    with rasterio.open(pair.target) as src:
        mask = np.zeros((src.height, src.width), np.uint16)
        profile = dict(driver="GTiff", width=src.width, height=src.height, count=1, dtype="uint16")
    mask[:, :256] = cloud  # over the left half
    mask[:100, 300:] = kept
    with rasterio.open(tmp_path / "scl.tif", "w", **profile) as dst:
        dst.write(mask[None])
    result = estimate_alignment(pair.target, pair.reference, AlignOptions(
        mask_target=f"{tmp_path / 'scl.tif'}{spec}", refine=RefineOptions(enabled=False)))
    tp = result.tie_points.target_px
    assert result.quality.passed and tp[:, 0].min() > 250 and (tp[:, 1] < 100).any()
    assert ExclusionMask.parse(str(tmp_path / "scl.tif")).values is None


def test_a_mask_must_cover_its_image(tmp_path, scene):
    data, transform = crop(scene, 0, 0, 200)
    image = write_tif(tmp_path / "image.tif", data, transform, scene.crs)
    half = write_tif(tmp_path / "half.tif", np.ones((1, 100, 100), np.uint8), transform * Affine.scale(2), scene.crs)
    moved = write_tif(tmp_path / "moved.tif", np.ones((1, 100, 100), np.uint8),
                      Affine.translation(60, 0) * transform * Affine.scale(2), scene.crs)
    plain = write_tif(tmp_path / "plain.tif", np.ones((1, 50, 50), np.uint8), None, None)
    narrow = write_tif(tmp_path / "narrow.tif", np.ones((1, 50, 40), np.uint8), None, None)
    with rasterio.open(image) as ds:
        for role in ("target", "reference"):
            for fine in (half, plain):  # a coarser mask of the same extent; one with no georeference, same shape
                ExclusionMask(fine).check_covers(ds, str(image), role)
            with pytest.raises(InvalidOption, match="40 x 50 px"):
                ExclusionMask(narrow).check_covers(ds, str(image), role)
        # The target's georeference is the one being corrected: its mask may sit where it really is.
        ExclusionMask(moved).check_covers(ds, str(image), "target")
        with pytest.raises(InvalidOption, match="covers x 435790..437790"):
            ExclusionMask(moved).check_covers(ds, str(image), "reference")


def test_mask_bits_are_checked(tmp_path):
    flags = write_tif(tmp_path / "qa.tif", np.array([[[0, 1, 8, 9, 16, 32768]]], np.uint16), None, None)
    mask = ExclusionMask.parse(f"{flags}:bits=0,15")
    assert mask.excluded((6, 1), Window(0, 0, 6, 1), (1, 6)).tolist() == [[False, True, False, True, False, True]]
    floats = write_tif(tmp_path / "f.tif", np.zeros((1, 2, 2), np.float32), None, None)
    for spec, expected in ((f"{flags}:bits=16", "bit 16 is not one of the 0-15"), (f"{flags}:bits=", "lists no bit"),
                           (f"{flags}:bits=a", "not bit positions"), (f"{floats}:bits=1", "integer band")):
        with pytest.raises(InvalidOption, match=expected):
            ExclusionMask.parse(spec)


def test_an_error_in_a_stand_in_for_an_input_names_the_input(tmp_path, pair):
    """A reference read through a temporary VRT (a band stack, or a rotated grid warped north-up) is named
    as the user gave it, not as the VRT that stood for it and is gone."""
    with rasterio.open(pair.reference) as ref:
        profile, shape = ref.profile, (1, ref.height, ref.width)
    bands = []
    for i in range(3):
        bands.append(tmp_path / f"empty_b{i}.tif")
        with rasterio.open(bands[-1], "w", **dict(profile, count=1)) as dst:
            dst.write(np.zeros(shape, profile["dtype"]))
    stacked = ",".join(map(str, bands))
    with pytest.raises(EmptyDataError) as info:
        estimate_alignment(pair.target, stacked)
    assert info.value.path == stacked and "vrt" not in str(info.value)
    rotated = tmp_path / "empty_rotated.tif"
    with rasterio.open(rotated, "w", **dict(profile, transform=profile["transform"] * Affine.rotation(5))) as dst:
        dst.write(np.zeros((profile["count"],) + shape[1:], profile["dtype"]))
    with pytest.raises(EmptyDataError) as info:
        estimate_alignment(pair.target, rotated)
    assert info.value.path == str(rotated) and "vrt" not in str(info.value)
