"""Fitting user GCPs: any point set either is refused with exit 2 or gives a finite, non-degenerate result."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from rasterio.crs import CRS

from georef import geometry
from georef.cli.main import cli

from conftest import write_tif

TRUE = geometry.to_matrix(rasterio.Affine(10, 0.4, 400000, -0.3, -10, 4000000))
CRS_WKT = CRS.from_epsg(32618).to_wkt()
#: The target's own, slightly wrong, georeference.
CLAIM = geometry.to_matrix(rasterio.Affine(10, 0, 400100, 0, -10, 3999900))

coordinate = st.floats(0, 256, allow_nan=False)
point = st.tuples(coordinate, coordinate)


@st.composite
def gcp_sets(draw):
    """GCPs of a 256 px target: good ones with noise, then the damage a user or a tool can do."""
    pixel = np.array(draw(st.lists(point, min_size=1, max_size=12)), dtype=np.float64)
    map_xy = geometry.apply(TRUE, pixel) + np.array(draw(st.lists(st.floats(-5, 5), min_size=2 * len(pixel),
                                                                   max_size=2 * len(pixel)))).reshape(-1, 2)
    damage = draw(st.sampled_from(["none", "non-finite", "duplicate", "collinear", "same map"]))
    if damage == "non-finite":
        k = draw(st.integers(0, len(pixel) - 1))
        (pixel if draw(st.booleans()) else map_xy)[k, draw(st.integers(0, 1))] = draw(
            st.sampled_from([math.nan, math.inf, -math.inf]))
    elif damage == "duplicate":
        k = draw(st.integers(0, len(pixel) - 1))
        pixel, map_xy = np.vstack([pixel, pixel[k]]), np.vstack([map_xy, map_xy[k]])
    elif damage == "collinear":
        pixel[:, 1] = 0.5 * pixel[:, 0] + 3
        map_xy = geometry.apply(TRUE, pixel)
    elif damage == "same map":
        map_xy[:] = map_xy[0]
    model = draw(st.sampled_from(["auto", "shift", "similarity", "affine", "homography", "poly1", "poly2", "tps"]))
    return pixel, map_xy, model


@pytest.fixture(scope="module")
def target(tmp_path_factory):
    data = np.random.default_rng(0).integers(0, 255, (1, 256, 256)).astype(np.uint8)
    return write_tif(tmp_path_factory.mktemp("gcpfit") / "t.tif", data, geometry.to_affine(CLAIM),
                     CRS.from_epsg(32618))


def write_points(path, pixel, map_xy):
    rows = [f"{float(mx)!r},{float(my)!r},{float(px)!r},{-float(py)!r},1" for (px, py), (mx, my) in zip(pixel, map_xy)]
    path.write_text("\n".join([f"#CRS: {CRS_WKT}", "mapX,mapY,sourceX,sourceY,enable", *rows]) + "\n")
    return path


def fit(points, target, out, model, report):
    return CliRunner().invoke(cli, ["fit", str(points), str(target), "-o", str(out), "--model", model,
                                    "--report", str(report)])


@pytest.mark.parametrize("model", ["shift", "similarity", "affine", "poly1", "tps", "auto"])
def test_good_gcps_are_fitted(target, tmp_path, model):
    pixel = np.array([[10.0, 12.0], [240.0, 20.0], [30.0, 230.0], [220.0, 250.0], [128.0, 120.0]])
    # The truth of each model: a shift keeps the target's own pixels (10 m, north-up), a similarity has no shear.
    truth = {"shift": geometry.translation(-340.0, 80.0) @ CLAIM,
             "similarity": geometry.to_matrix(rasterio.Affine(9.9, 0.5, 400000, 0.5, -9.9, 4000000))}.get(model, TRUE)
    result = fit(write_points(tmp_path / "g.points", pixel, geometry.apply(truth, pixel)), target,
                 tmp_path / "o.tif", model, tmp_path / "r.json")
    assert result.exit_code == 0, result.stderr
    residual = json.loads((tmp_path / "r.json").read_text())["alignment"]["tie_points"]["residual_px"]
    assert max(residual) < 1e-6


def test_the_estimate_of_a_gcp_fit_covers_its_error_and_grows_with_a_wrong_model(target, tmp_path):
    rng = np.random.default_rng(3)
    pixel = rng.uniform(0, 256, (40, 2))
    unit = math.sqrt(abs(np.linalg.det(TRUE[:2, :2])))
    map_xy = geometry.apply(TRUE, pixel) + rng.normal(0, unit, (40, 2))  # placed to about a pixel
    points = write_points(tmp_path / "g.points", pixel, map_xy)
    estimates = {}
    for model in ("affine", "shift"):
        assert fit(points, target, tmp_path / f"{model}.tif", model, tmp_path / f"{model}.json").exit_code == 0
        data = json.loads((tmp_path / f"{model}.json").read_text())
        estimates[model] = data["estimated_ce90_px"]
    corners = geometry.corners(256, 256)
    with rasterio.open(tmp_path / "affine.tif") as ds:
        fitted = geometry.to_matrix(ds.transform)
    error = np.linalg.norm(geometry.apply(fitted, corners) - geometry.apply(TRUE, corners), axis=1).mean() / unit
    assert error <= estimates["affine"] < 3
    # the shift leaves out TRUE's shear and rotation: 0.04 of 256 px at the corners
    assert estimates["shift"] > 2 * estimates["affine"]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(gcp_sets())
# Distinct numbers that are no distinct places: pixels 2e-311 px apart, and map positions 1e-300 m apart
# (whose pixel's area underflows to 0).
@example(gcps=(np.array([[0.0, 0.0], [0.0, 2.22507386e-311]]), np.array([[4e5, 4e6], [4e5, 4e6 + 1]]), "auto"))
@example(gcps=(np.array([[10.0, 10.0], [200.0, 10.0]]), np.array([[0.0, 0.0], [1e-300, 0.0]]), "similarity"))
def test_fit_refuses_or_writes_a_sound_georeference(target, tmp_path_factory, gcps):
    pixel, map_xy, model = gcps
    folder = tmp_path_factory.mktemp("case")
    out, report = folder / "o.tif", folder / "r.json"
    result = fit(write_points(folder / "g.points", pixel, map_xy), target, out, model, report)
    assert result.exit_code in (0, 2), (result.exit_code, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    if result.exit_code == 2:
        assert "g.points" in result.stderr and not out.exists() and not report.exists()
        return
    data = json.loads(report.read_text())
    residual = np.asarray(data["alignment"]["tie_points"]["residual_px"])
    assert np.isfinite(residual).all()
    assert data["estimated_ce90_px"] is None or 0 <= data["estimated_ce90_px"] < math.inf
    with rasterio.open(out) as ds:
        written = geometry.to_matrix(ds.transform)
        gcp_count = len(ds.gcps[0])
    if data["model"] not in ("shift", "similarity", "affine"):  # travels as GCPs (or a homography's best affine)
        assert gcp_count > 0 or data["model"] == "homography"
        return
    assert np.isfinite(written).all()
    axes = np.linalg.svd(written[:2, :2], compute_uv=False)
    assert axes[-1] > 1e-6 * axes[0]  # not singular
    # the written geotransform reproduces every reported residual at its GCP
    unit = math.sqrt(abs(np.linalg.det(written[:2, :2])))
    at_gcps = np.linalg.norm(geometry.apply(written, pixel) - map_xy, axis=1) / unit
    np.testing.assert_allclose(at_gcps, residual, rtol=1e-6, atol=1e-6)
