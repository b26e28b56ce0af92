import json

import numpy as np
import pytest
from click.testing import CliRunner

from georef import __version__
from georef.cli.main import cli

from conftest import crop, write_tif


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_version():
    result = run("--version")
    assert result.exit_code == 0 and __version__ in result.output


def test_align_writes_output_and_report(pair, tmp_path):
    out, report = tmp_path / "out.tif", tmp_path / "r.json"
    result = run("align", pair.target, "--ref", pair.reference, "-o", out, "--report", report)
    assert result.exit_code == 0, result.output
    assert "quality gate passed" in result.output
    data = json.loads(report.read_text())
    assert data["status"] == "passed" and data["matcher"] == "xfeat"
    assert data["model"] == "shift"  # auto: a shifted subtile needs neither rotation nor scale
    for key in ("estimated_ce90_m", "estimated_ce90_px", "matches", "inliers", "tie_point_rmse_px", "tie_point_max_px",
                "tie_point_rmse_m", "tie_point_max_m", "coverage", "timings_s", "versions", "search"):
        assert key in data
    assert data["span"] == 1.0  # the windows tile the whole target
    # a shifted subtile: one correlation finds it, the matcher is not needed
    assert data["alignment"]["path"] == "correlation"
    assert set(data["timings_s"]) == {"read", "correlate", "refine", "write"}
    assert "rasterio" in data["versions"] and "torch" in data["versions"]


def test_copy_free_outputs(pair, tmp_path):
    import rasterio

    vrt = tmp_path / "out.vrt"
    result = run("align", pair.target, "--ref", pair.reference, "-o", vrt)
    assert result.exit_code == 0, result.output
    result = run("align", pair.target, "--ref", pair.reference, "--sidecar", "--in-place")
    assert result.exit_code == 0, result.output
    assert f"wrote {pair.target}.aux.xml" in result.output
    with rasterio.open(vrt) as a, rasterio.open(pair.target) as b:
        assert a.transform.almost_equals(b.transform, 1e-6)  # both carry the alignment
        assert np.hypot(a.transform.c - pair.truth.c, a.transform.f - pair.truth.f) < 10


def test_quiet_prints_nothing_but_errors(pair, tmp_path):
    result = run("-q", "align", pair.target, "--ref", pair.reference, "-o", tmp_path / "o.tif", "--matcher", "sift")
    assert result.exit_code == 0, result.output
    assert result.output == ""  # the summary and "wrote" lines too: -q is for scripts
    failed = run("-q", "align", pair.target, "--ref", pair.reference, "-o", tmp_path / "p.tif", "--min-inliers", "9999")
    assert failed.exit_code == 3 and failed.stdout == ""
    assert failed.stderr.splitlines() == [line for line in failed.stderr.splitlines() if line.startswith("georef: error:")]
    assert "9999" in failed.stderr


def _assert_error(result, *fragments, code=2):
    assert result.exit_code == code, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("georef: error:")]
    assert len(lines) == 1, result.output
    for fragment in fragments:
        assert fragment in lines[0]


def test_missing_target(pair, tmp_path):
    out = tmp_path / "o.tif"
    _assert_error(run("align", tmp_path / "missing.tif", "--ref", pair.reference, "-o", out), "missing.tif", "no such file")
    assert not out.exists()


def test_reference_without_crs(pair, tmp_path, scene):
    data, t = crop(scene, 0, 0, 300)
    ref = write_tif(tmp_path / "nocrs.tif", data, t, None)
    _assert_error(run("align", pair.target, "--ref", ref, "-o", tmp_path / "o.tif"), "nocrs.tif", "reference has no CRS")


def test_target_without_georeference_outside_the_reference(pair, tmp_path, scene):
    data, _ = crop(scene, 0, 0, 300)
    tgt = write_tif(tmp_path / "plain.tif", data, None, None)
    _assert_error(run("align", tgt, "--ref", pair.reference, "-o", tmp_path / "o.tif"), "plain.tif",
                  "not found in the reference by a global search", "--approx-center", code=3)
    assert not (tmp_path / "o.tif").exists()


def test_no_overlap(pair, tmp_path, scene):
    from affine import Affine

    data, t = crop(scene, 0, 0, 300)
    far = write_tif(tmp_path / "far.tif", data, Affine.translation(0, 80_000) * t, scene.crs)
    _assert_error(run("align", far, "--ref", pair.reference, "-o", tmp_path / "o.tif"), "reference.tif", "does not overlap")


def test_a_reference_of_a_few_pixels_is_named_as_such(pair, tmp_path, scene):
    data, t = crop(scene, 700, 650, 3)  # 3 px inside the target's footprint: it overlaps, but holds nothing to match
    tiny = write_tif(tmp_path / "tiny.tif", data, t, scene.crs)
    _assert_error(run("align", pair.target, "--ref", tiny, "-o", tmp_path / "o.tif"), "tiny.tif",
                  "holds only 3 x 3 of its pixels within 600 m of the target footprint")


def test_all_nodata_target(pair, tmp_path, scene):
    with_truth = crop(scene, 700, 650, 512)[1]
    tgt = write_tif(tmp_path / "empty.tif", np.zeros((3, 512, 512), np.uint16), with_truth, scene.crs, nodata=0)
    _assert_error(run("align", tgt, "--ref", pair.reference, "-o", tmp_path / "o.tif"), "empty.tif", "only nodata")


def test_band_that_does_not_exist(pair, tmp_path):
    _assert_error(run("align", pair.target, "--ref", pair.reference, "-o", tmp_path / "o.tif", "--bands", "1,5"),
                  "has no band 5")


def test_existing_output_needs_overwrite(pair, tmp_path):
    out = tmp_path / "o.tif"
    out.write_bytes(b"old")
    _assert_error(run("align", pair.target, "--ref", pair.reference, "-o", out), "o.tif", "--overwrite")
    assert out.read_bytes() == b"old"
    assert run("align", pair.target, "--ref", pair.reference, "-o", out, "--overwrite").exit_code == 0
    assert out.read_bytes() != b"old"


def test_unmatchable_target_fails_the_gate_with_exit_3(pair, tmp_path, scene):
    noise = np.random.default_rng(0).integers(0, 4000, (3, 512, 512)).astype(np.uint16)
    tgt = write_tif(tmp_path / "noise.tif", noise, crop(scene, 700, 650, 512)[1], scene.crs)
    out, report = tmp_path / "o.tif", tmp_path / "r.json"
    result = run("align", tgt, "--ref", pair.reference, "-o", out, "--report", report)
    assert result.exit_code == 3, result.output
    assert "noise.tif" in result.output
    assert not out.exists()


def test_force_writes_despite_the_gate(pair, tmp_path):
    out, report = tmp_path / "o.tif", tmp_path / "r.json"
    result = run("align", pair.target, "--ref", pair.reference, "-o", out, "--report", report,
                 "--min-inliers", "100000", "--force")
    assert result.exit_code == 0, result.output
    assert out.exists() and json.loads(report.read_text())["status"] == "failed"


def test_gate_failure_exit_code_and_reason(pair, tmp_path):
    out = tmp_path / "o.tif"
    result = run("align", pair.target, "--ref", pair.reference, "-o", out, "--min-inliers", "100000")
    _assert_error(result, "target.tif", "inliers < 100000", code=3)
    assert not out.exists()


@pytest.mark.parametrize("bad", ["x", "0", "1,,2"])
def test_bad_band_syntax_is_a_usage_error(pair, tmp_path, bad):
    result = run("align", pair.target, "--ref", pair.reference, "-o", tmp_path / "o.tif", "--bands", bad)
    assert result.exit_code == 2 and "--bands" in result.output


def test_plain_target_found_through_the_cli_with_approx_center(tmp_path, scene):
    from rasterio.warp import transform as transform_coords

    ref = write_tif(tmp_path / "ref.tif", scene.data, scene.transform, scene.crs)
    data, truth = crop(scene, 900, 700, 600)
    plain = write_tif(tmp_path / "plain.tif", data, None, None)
    x, y = truth * (300, 300)
    (lon,), (lat,) = transform_coords(scene.crs, "EPSG:4326", [x], [y])
    out = tmp_path / "o.tif"
    result = run("align", plain, "--ref", ref, "-o", out, "--approx-center", str(lon), str(lat), "--no-progress")
    assert result.exit_code == 0, result.output
    import rasterio

    with rasterio.open(out) as ds:
        assert abs(ds.transform.c - truth.c) < 5 and abs(ds.transform.f - truth.f) < 5 and ds.crs == scene.crs


def test_a_fit_from_a_narrow_strip_is_refused(pair, tmp_path):
    import rasterio

    with rasterio.open(pair.target) as ds:
        data, transform, crs = ds.read(), ds.transform, ds.crs
    data[:, :, :40] = 0
    data[:, :, 120:] = 0  # only an 80 px column holds data: its corners lie 400 px beyond it
    strip = write_tif(tmp_path / "strip.tif", data, transform, crs, nodata=0)
    out = tmp_path / "out.tif"
    result = run("align", strip, "--ref", pair.reference, "-o", out)
    assert result.exit_code == 3, result.output
    assert "spanning" in result.output and "too far outside them" in result.output
    assert not out.exists()
