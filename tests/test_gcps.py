import json

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner

from georef import gcps, geometry
from georef import AlignOptions, OutputOptions, align_file
from georef.cli.main import cli


@pytest.fixture(scope="module")
def aligned(tmp_path_factory, scene):
    from conftest import crop, write_tif
    from affine import Affine

    tmp = tmp_path_factory.mktemp("gcps")
    ref_data, ref_t = crop(scene, 500, 500, 900)
    tgt_data, truth = crop(scene, 700, 650, 512)
    reference = write_tif(tmp / "reference.tif", ref_data, ref_t, scene.crs)
    target = write_tif(tmp / "target.tif", tgt_data, Affine.translation(120, -70) * truth, scene.crs)
    report = tmp / "report.json"
    # Keypoint tie points (with their outliers), not the correlation path's windows.
    result = align_file(target, reference, OutputOptions(output=tmp / "aligned.tif", report=report),
                        AlignOptions(correlation_first=False))
    return result, report, target, reference, truth


@pytest.mark.parametrize("suffix", gcps.FORMATS)
def test_every_export_round_trips(aligned, tmp_path, suffix):
    result, report, *_ = aligned
    table = gcps.read(report)
    assert len(table) == result.quality.matches and table.crs == result.crs
    path = gcps.write(table, tmp_path / f"points{suffix}")
    back = gcps.read(path)
    assert back.crs == table.crs
    np.testing.assert_allclose(back.pixel, table.pixel, atol=1e-9)
    np.testing.assert_allclose(back.map_xy, table.map_xy, atol=1e-6)
    np.testing.assert_array_equal(back.inlier, table.inlier)
    if suffix != ".points":  # .points keeps only QGIS's columns
        np.testing.assert_allclose(back.residual_px, table.residual_px, atol=1e-9)
        np.testing.assert_allclose(back.residual_m, table.residual_m, atol=1e-9)
        np.testing.assert_allclose(back.confidence, table.confidence, atol=1e-6)
    assert not list(tmp_path.glob(".*"))  # no temporary file left


def test_vector_layers_are_named_gcps_not_after_the_temporary_file(aligned, tmp_path):
    import pyogrio

    table = gcps.read(aligned[1])
    for suffix in (".gpkg", ".geojson"):
        assert [str(name) for name, _ in pyogrio.list_layers(gcps.write(table, tmp_path / f"p{suffix}"))] == ["gcps"]


def test_geojson_refuses_a_crs_without_an_epsg_code(aligned, tmp_path):
    # GDAL wrote it with no CRS at all, and read back it was WGS 84: the fit then put the GCPs in degrees.
    from dataclasses import replace

    from rasterio.crs import CRS

    from georef.errors import GcpFormatError

    local = replace(gcps.read(aligned[1]), crs=CRS.from_wkt('LOCAL_CS["site grid",UNIT["metre",1]]'))
    with pytest.raises(GcpFormatError, match="GeoJSON names a CRS by its EPSG code"):
        gcps.write(local, tmp_path / "p.geojson")
    assert not list(tmp_path.iterdir())
    assert gcps.read(gcps.write(local, tmp_path / "p.gpkg")).crs == local.crs


def test_residual_vectors_agree_with_the_report(aligned):
    result, report, *_ = aligned
    table = gcps.read(report)
    np.testing.assert_allclose(np.linalg.norm(table.residual_px, axis=1), result.tie_points.residual_px, rtol=1e-3,
                               atol=1e-3)
    np.testing.assert_allclose(np.linalg.norm(table.residual_m, axis=1),
                               np.linalg.norm(table.residual_px, axis=1) * 10, rtol=1e-3)


def test_points_file_follows_the_qgis_rules(aligned, tmp_path):
    result, report, *_ = aligned
    path = gcps.write(gcps.read(report), tmp_path / "g.points")
    lines = path.read_text().splitlines()
    assert lines[0].startswith("#CRS: ") and "UTM zone 18N" in lines[0]
    assert lines[1] == "mapX,mapY,sourceX,sourceY,enable,dX,dY,residual"
    first = [float(v) for v in lines[2].split(",")]
    assert len(first) == 8 and first[3] <= 0  # source y is the negative row
    # the reader accepts QGIS variants: no CRS line, no header, tabs, 4 columns only
    (tmp_path / "min.points").write_text("442885.0\t4163935.0\t315.5\t-1172.5\n442895.0\t4163935.0\t316.5\t-1172.5\n")
    table = gcps.read(tmp_path / "min.points")
    assert table.crs is None and table.inlier.all()
    np.testing.assert_allclose(table.pixel, [[315.5, 1172.5], [316.5, 1172.5]])
    (tmp_path / "bad.points").write_text("1,2,3\n")
    with pytest.raises(gcps.GcpFormatError, match="fewer than 4 columns"):
        gcps.read(tmp_path / "bad.points")


def test_gcps_from_a_geotiff_and_unknown_format(aligned, tmp_path):
    result, _, target, *_ = aligned
    from georef.write import write_aligned

    tif = write_aligned(target, tmp_path / "with_gcps.tif", result, gcps=10)
    assert len(gcps.read(tif)) == 10
    with pytest.raises(gcps.GcpFormatError, match="unknown GCP format '.kml'"):
        gcps.write(gcps.read(tif), tmp_path / "x.kml")


def test_cli_exports_and_fits_edited_points(aligned, tmp_path):
    result, report, target, reference, truth = aligned
    points = tmp_path / "edited.points"
    run = CliRunner().invoke(cli, ["gcps", str(report), "--to", str(points)])
    assert run.exit_code == 0, run.output
    # the user disables every outlier and fits a second-order polynomial
    table = gcps.read(points)
    out = tmp_path / "fitted.tif"
    run = CliRunner().invoke(cli, ["fit", str(points), str(target), "-o", str(out), "--model", "poly2",
                                   "--report", str(tmp_path / "fit.json")])
    assert run.exit_code == 0, run.output
    with rasterio.open(out) as ds:
        embedded, crs = ds.gcps
    assert crs == result.crs and len(embedded) == 64  # a polynomial travels as GCPs
    px = np.array([[g.col, g.row] for g in embedded])
    xy = np.array([[g.x, g.y] for g in embedded])
    err = np.linalg.norm(xy - geometry.apply(geometry.to_matrix(truth), px), axis=1) / 10
    assert err.max() < 1.0
    assert table.inlier.sum() < len(table)
    # an affine fit writes a geotransform close to the truth
    out2 = tmp_path / "fitted_affine.tif"
    run = CliRunner().invoke(cli, ["fit", str(points), str(target), "-o", str(out2)])
    assert run.exit_code == 0, run.output
    with rasterio.open(out2) as ds:
        assert geometry.mean_corner_distance(geometry.to_matrix(ds.transform), geometry.to_matrix(truth), 512, 512) < 5


def test_points_without_a_crs_take_the_targets_or_the_one_given(aligned, tmp_path):
    # QGIS wrote .points files without a CRS line before 3.26; fit refused them all.
    result, report, target, reference, truth = aligned
    gcps.write(gcps.read(report), tmp_path / "with.points")
    bare = tmp_path / "bare.points"
    bare.write_text("".join(line for line in (tmp_path / "with.points").read_text().splitlines(keepends=True)
                            if not line.startswith("#")))
    fits = {}
    for name, extra in [("with", []), ("bare", []), ("given", ["--gcp-crs", "EPSG:32618"])]:
        source = tmp_path / ("with.points" if name == "with" else "bare.points")
        run = CliRunner().invoke(cli, ["fit", str(source), str(target), "-o", str(tmp_path / f"{name}.tif"), *extra])
        assert run.exit_code == 0, run.output
        with rasterio.open(tmp_path / f"{name}.tif") as ds:
            fits[name] = ds.crs, ds.transform
    assert fits["bare"] == fits["with"] == fits["given"] and fits["with"][0] == result.crs
    # With no CRS anywhere the one line says how to give it.
    plain = tmp_path / "plain.tif"
    with rasterio.open(target) as src:
        profile = {**src.profile, "crs": None}
        with rasterio.open(plain, "w", **profile) as dst:
            dst.write(src.read())
    run = CliRunner().invoke(cli, ["fit", str(bare), str(plain), "-o", str(tmp_path / "x.tif")])
    assert run.exit_code == 2 and "carry no CRS" in run.stderr and "--gcp-crs" in run.stderr


def test_report_figures_and_summaries(aligned):
    _, report, *_ = aligned
    stem = report.with_suffix("")
    for path in (f"{stem}_residuals.png", f"{stem}_histogram.png", f"{stem}.md", f"{stem}.html"):
        assert (report.parent / path).stat().st_size > 500, path
    md = report.with_suffix(".md").read_text()
    assert "held-out" in md and "| tps |" in md and "passed" in md
    data = json.loads(report.read_text())
    assert {"affine", "poly2", "tps"} <= set(data["alignment"]["model_comparison"])


def test_cli_errors_name_the_file(tmp_path):
    run = CliRunner().invoke(cli, ["gcps", str(tmp_path / "nope.json"), "--to", str(tmp_path / "x.csv")])
    assert run.exit_code == 2 and "nope.json: no such file" in run.output
    (tmp_path / "junk.csv").write_text("a,b\n1,2\n")
    run = CliRunner().invoke(cli, ["fit", str(tmp_path / "junk.csv"), str(tmp_path / "t.tif"), "-o", str(tmp_path / "o.tif")])
    assert run.exit_code == 2 and "junk.csv" in run.output and not (tmp_path / "o.tif").exists()
