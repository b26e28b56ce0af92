"""Outputs that copy no pixels: a VRT over the target, a sidecar beside a hard link or the target itself."""

import hashlib
import xml.etree.ElementTree as ET
from dataclasses import replace

import numpy as np
import pytest
import rasterio
import rasterio.shutil

from georef import OutputOptions, align_file, estimate_alignment, geometry
from georef.copyfree import backup_path, sidecar_path, write_sidecar
from georef.errors import InvalidOption, OutputExistsError
from georef.workflow import write_outputs


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def alignment(pair):
    return estimate_alignment(pair.target, pair.reference)


def _jp2(tmp_path, tif):
    """The target as a JPEG2000 with its own (wrong) georeference, as Sentinel-2 delivers it."""
    jp2 = tmp_path / "target.jp2"
    rasterio.shutil.copy(tif, jp2, driver="JP2OpenJPEG", QUALITY="100", REVERSIBLE="YES")
    sidecar_path(jp2).unlink(missing_ok=True)  # GDAL's own, for what JPEG2000 cannot hold: start without one
    return jp2


def _same_pixels(a, b):
    with rasterio.open(a) as x, rasterio.open(b) as y:
        np.testing.assert_array_equal(x.read(), y.read())


def test_vrt_references_the_target_and_carries_the_new_geotransform(tmp_path, pair, alignment):
    target = _jp2(tmp_path, pair.target)
    before = _digest(target)
    out = tmp_path / "out" / "aligned.vrt"
    write_outputs(alignment, target, OutputOptions(output=out))
    assert out.stat().st_size < 10_000  # XML, no pixels
    assert _digest(target) == before
    _same_pixels(target, out)
    with rasterio.open(out) as ds:
        np.testing.assert_allclose(geometry.to_matrix(ds.transform), alignment.transform, atol=1e-9)
        assert ds.crs == alignment.crs
    assert not list(out.parent.glob(".*part*"))


def test_vrt_of_band_files_references_each(tmp_path, pair, alignment):
    with rasterio.open(pair.target) as src:
        profile, data = src.profile, src.read()
    bands = []
    for i in range(3):
        path = tmp_path / f"B{i}.tif"
        with rasterio.open(path, "w", **{**profile, "count": 1}) as dst:
            dst.write(data[i], 1)
        bands.append(str(path))
    out = tmp_path / "bands.vrt"
    write_outputs(alignment, ",".join(bands), OutputOptions(output=out))
    with rasterio.open(out) as ds:  # the temporary stack is gone: the VRT names the band files
        np.testing.assert_array_equal(ds.read(), data)
        np.testing.assert_allclose(geometry.to_matrix(ds.transform), alignment.transform, atol=1e-9)


def test_vrt_with_gcps(tmp_path, pair, alignment):
    out = tmp_path / "gcps.vrt"
    write_outputs(alignment, pair.target, OutputOptions(output=out, gcps=12))
    with rasterio.open(out) as ds:
        gcps, crs = ds.gcps
    assert len(gcps) == 12 and crs == alignment.crs
    px = np.array([[g.col, g.row] for g in gcps])
    np.testing.assert_allclose([[g.x, g.y] for g in gcps], geometry.apply(alignment.transform, px), atol=1e-6)


def test_sidecar_beside_a_hard_link(tmp_path, pair, alignment):
    target = _jp2(tmp_path, pair.target)
    before = _digest(target)
    out = tmp_path / "aligned.jp2"
    write_outputs(alignment, target, OutputOptions(output=out, sidecar=True))
    assert out.stat().st_ino == target.stat().st_ino  # the same pixels under a second name
    assert _digest(target) == before and not sidecar_path(target).exists()
    with rasterio.open(out) as ds, rasterio.open(target) as original:
        np.testing.assert_allclose(geometry.to_matrix(ds.transform), alignment.transform, atol=1e-9)
        assert original.transform != ds.transform  # the target still opens where it claimed to be


def test_sidecar_in_place_keeps_the_previous_one_and_its_other_content(tmp_path, pair, alignment):
    target = _jp2(tmp_path, pair.target)
    before = _digest(target)
    with rasterio.open(target) as ds:
        old_transform = ds.transform
    sidecar = sidecar_path(target)
    sidecar.write_text('<PAMDataset><Metadata><MDI key="NOTE">kept</MDI></Metadata></PAMDataset>')
    previous = sidecar.read_text()
    write_outputs(alignment, target, OutputOptions(sidecar=True, in_place=True))
    assert _digest(target) == before
    assert backup_path(target).read_text() == previous
    with rasterio.open(target) as ds:
        np.testing.assert_allclose(geometry.to_matrix(ds.transform), alignment.transform, atol=1e-9)
        assert ds.tags()["NOTE"] == "kept"
        assert ds.transform != old_transform


def test_align_file_in_place_then_again(tmp_path, pair):
    """Running twice replaces the sidecar (in place asks for it) and backs up the first result."""
    target = _jp2(tmp_path, pair.target)
    first = align_file(target, pair.reference, OutputOptions(sidecar=True, in_place=True))
    second = align_file(target, pair.reference, OutputOptions(sidecar=True, in_place=True))
    # The second run starts from the first's position: it finds (almost) the same transform.
    assert geometry.mean_corner_distance(first.transform, second.transform, 512, 512) < 0.5
    root = ET.parse(backup_path(target)).getroot()
    assert root.find("GeoTransform") is not None


def test_sidecar_refuses_what_it_cannot_carry(tmp_path, pair, alignment):
    with pytest.raises(InvalidOption, match="geotransform only"):
        OutputOptions(output=tmp_path / "x.tif", sidecar=True, gcps=8).validate()
    with pytest.raises(InvalidOption, match="in_place"):
        OutputOptions(output=tmp_path / "x.tif", sidecar=True, in_place=True).validate()
    with pytest.raises(InvalidOption, match="needs"):
        OutputOptions(sidecar=True).validate()
    with pytest.raises(InvalidOption, match="extension"):
        align_file(pair.target, pair.reference, OutputOptions(output=tmp_path / "x.jp2", sidecar=True))
    with pytest.raises(InvalidOption, match="single raster file"):
        align_file(f"{pair.target},{pair.target}", pair.reference, OutputOptions(output=tmp_path / "x.tif",
                                                                                 sidecar=True))
    with pytest.raises(InvalidOption, match="warp"):
        OutputOptions(output=tmp_path / "x.vrt", warp=True).validate()
    warped = replace(alignment, warp=object(), model="poly2")
    with pytest.raises(InvalidOption, match="needs GCPs"):
        write_sidecar(pair.target, warped, tmp_path / "y.tif")


def test_sidecar_output_follows_the_overwrite_rules(tmp_path, pair, alignment):
    out = tmp_path / "aligned.tif"
    sidecar_path(out).write_text("<PAMDataset/>")
    with pytest.raises(OutputExistsError):
        align_file(pair.target, pair.reference, OutputOptions(output=out, sidecar=True))
    assert not out.exists()  # refused before any work
    align_file(pair.target, pair.reference, OutputOptions(output=out, sidecar=True, overwrite=True))
    with rasterio.open(out) as ds:
        assert not ds.transform.is_identity
