import csv
import json
import runpy

import numpy as np
import pytest
import rasterio
from affine import Affine
from click.testing import CliRunner

from georef import geometry
from georef.options import AlignOptions, RefineOptions
from georef.benchmark import run as bench_run
from georef.benchmark.cases import CaseSpec, build_cases, csv_cases
from georef.cli.main import cli
from georef.matchers.base import Matcher, Matches

from conftest import REPO, S2_SEASONS, write_tif


class ExactMatcher(Matcher):
    """Returns correspondences computed from the truth: scores the metric, not a matcher."""

    name = "exact"

    def __init__(self, truth_target_to_map, chips):
        self.truth = truth_target_to_map
        self.chips = chips  # filled with each chip read by the pipeline

    def match(self, image0, image1, valid0=None, valid1=None, prior=None, radius=8.0):
        chip = self.chips[-1]
        h, w = image0.shape
        idx = geometry.grid_points(w, h, 12) - 0.5  # index coordinates of target points
        target_px = idx + 0.5  # working image == target here (no decimation)
        chip_px = geometry.apply(np.linalg.inv(chip.to_world) @ self.truth, target_px)
        return Matches(idx, chip_px - 0.5, np.ones(len(idx)), len(idx), len(idx))


@pytest.mark.realdata
def test_exact_correspondences_score_zero(tmp_path, monkeypatch):
    case = build_cases(S2_SEASONS, tmp_path / "cases", CaseSpec(limit=1))[0]
    from georef import raster

    chips, read = [], raster.read_reference_chip
    monkeypatch.setattr(raster, "read_reference_chip", lambda *a, **k: chips.append(read(*a, **k)) or chips[-1])
    monkeypatch.setattr("georef.pipeline.create_matcher", lambda *a, **k: ExactMatcher(case.truth, chips))
    row = bench_run.run_case(case, AlignOptions(refine=RefineOptions(enabled=False)), tmp_path / "out")
    assert row["status"] == "ok" and row["accepted"]
    assert row["error_px"] < 1e-3 and row["checkpoint_rmse_px"] < 1e-3


def test_csv_pairs_with_and_without_truth(tmp_path, scene):
    data = scene.data[:, 600:900, 600:900]
    truth = scene.transform * Affine.translation(650, 650)
    write_tif(tmp_path / "ref.tif", scene.data[:, 500:1000, 500:1000], scene.transform * Affine.translation(500, 500),
              scene.crs)
    write_tif(tmp_path / "tgt.tif", data[:, 50:250, 50:250], Affine.translation(60, 40) * truth, scene.crs)
    with open(tmp_path / "pairs.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["target", "reference", "a", "b", "c", "d", "e", "f"])
        w.writerow(["tgt.tif", "ref.tif", *list(truth)[:6]])
        w.writerow(["tgt.tif", "ref.tif", "", "", "", "", "", ""])
    cases = csv_cases(tmp_path / "pairs.csv")
    assert cases[0].truth is not None and cases[1].truth is None
    assert cases[0].metres_per_px == pytest.approx(10) and cases[0].name != cases[1].name
    summary = bench_run.benchmark(tmp_path / "pairs.csv", tmp_path / "out")
    entry = summary["settings"]["xfeat/auto/2 pairs"]
    assert entry["cases"] == 1 and entry["cases_without_truth"] == 1 and entry["within_1px"] == 1.0


def test_csv_truth_in_a_reference_crs_the_output_does_not_share(tmp_path, scene):
    """The output stays in the target's CRS; the truth, in the reference's, is met there."""
    from rasterio.crs import CRS
    from rasterio.warp import calculate_default_transform, reproject
    from rasterio.warp import transform as warp_transform

    mercator = CRS.from_epsg(3857)
    ref_t = scene.transform * Affine.translation(500, 500)
    transform, w, h = calculate_default_transform(scene.crs, mercator, 500, 500,
                                                  *rasterio.transform.array_bounds(500, 500, ref_t))
    warped = np.zeros((3, h, w), np.uint16)
    reproject(scene.data[:, 500:1000, 500:1000], warped, src_transform=ref_t, src_crs=scene.crs,
              dst_transform=transform, dst_crs=mercator)
    write_tif(tmp_path / "ref.tif", warped, transform, mercator)
    truth = scene.transform * Affine.translation(650, 650)
    write_tif(tmp_path / "tgt.tif", scene.data[:, 650:850, 650:850], Affine.translation(60, 40) * truth, scene.crs)
    corners = np.array([[0, 0], [200, 0], [0, 200]], float)
    xs, ys = warp_transform(scene.crs, mercator, *(truth * corners.T))  # the truth as an affine into Mercator
    (a, b, c), (d, e, f) = np.linalg.solve(np.c_[corners, np.ones(3)], np.c_[xs, ys]).T
    with open(tmp_path / "pairs.csv", "w", newline="") as out:
        csv.writer(out).writerows([["target", "reference", "a", "b", "c", "d", "e", "f"],
                                   ["tgt.tif", "ref.tif", a, b, c, d, e, f]])
    bench_run.benchmark(tmp_path / "pairs.csv", tmp_path / "out")
    (row,) = csv.DictReader(open(tmp_path / "out" / "cases.csv"))
    assert row["accepted"] == "True" and float(row["error_px"]) < 0.5


@pytest.mark.realdata
def test_two_pair_benchmark_run_writes_sane_files(tmp_path):
    out = tmp_path / "bench"
    args = ["benchmark", str(S2_SEASONS), "--matchers", "xfeat,sift", "--limit", "2", "--thresholds", "1,3",
            "--out", str(out)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(open(out / "cases.csv")))
    assert len(rows) == 2 * 2 * 3  # cases x matchers x thresholds
    xfeat = [r for r in rows if r["matcher"] == "xfeat" and r["threshold"] == "2"]
    assert all(0 <= float(r["error_px"]) < 5 and 0 < float(r["inlier_ratio"]) <= 1 for r in xfeat)
    summary = json.loads((out / "summary.json").read_text())["settings"]
    assert set(summary) == {f"{m}/auto/{t} winter->summer" for m in ("xfeat", "sift") for t in ("1", "2", "3")}
    assert summary["xfeat/auto/2 winter->summer"]["cases"] == 2
    assert {r["path"] for r in xfeat} <= {"correlation", "keypoints"}
    entry = summary["xfeat/auto/2 winter->summer"]
    assert entry["correlation_cases"] + entry["keypoints_cases"] == 2
    assert entry["correlation_cases"] == sum(r["path"] == "correlation" for r in xfeat)
    for name in ("cdf.png", "sweep.png", "matches.png", "report.md"):
        assert (out / name).stat().st_size > 1000, name
    assert "wrong but accepted" in (out / "report.md").read_text()
    # a second run resumes: nothing is run again
    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 0 and len(list(csv.DictReader(open(out / "cases.csv")))) == 12


def test_the_band_layout_sample_runs_without_the_shared_data(tmp_path):
    """samples/make_band_layout.py: a scene of another continent in the s2-seasons layout. Its control season
    has the same bands as the reference, so its truth is exact: the method lands on it to a tenth of a pixel."""
    layout = runpy.run_path(str(REPO / "samples" / "make_band_layout.py"))["make_layout"](tmp_path / "layout").parent
    out = tmp_path / "bench"
    result = CliRunner().invoke(cli, ["benchmark", str(layout), "--seasons", "winter:summer,summer_prev:summer",
                                      "--tiles", "STEST512", "--out", str(out)])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(open(out / "cases.csv")))
    errors = {group: [float(r["error_px"]) for r in rows if r["group"] == group and r["accepted"] == "True"]
              for group in ("winter->summer", "summer_prev->summer")}
    assert len(rows) == 6 and all(len(e) == 3 for e in errors.values())
    assert max(errors["summer_prev->summer"]) < 0.1 and max(errors["winter->summer"]) < 0.5


def test_bad_matcher_name_is_a_usage_error(tmp_path):
    result = CliRunner().invoke(cli, ["benchmark", str(tmp_path), "--matchers", "xfeat,nope", "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "nope" in result.output


def test_folder_without_manifest_is_a_clear_error(tmp_path):
    result = CliRunner().invoke(cli, ["benchmark", str(tmp_path), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "manifest.json" in result.output


def test_the_report_gives_each_paths_cases_and_time():
    rows = [{"path": "correlation", "total_s": "0.1"}, {"path": "correlation", "total_s": "0.3"},
            {"path": "keypoints", "total_s": "0.5"}, {"path": "", "total_s": "9"}]
    times = bench_run._path_times(rows)
    assert times["correlation_cases"] == 2 and times["correlation_median_s"] == pytest.approx(0.2)
    assert times["keypoints_cases"] == 1 and times["keypoints_median_s"] == pytest.approx(0.5)
    from georef.benchmark.report import path_lines
    settings = {"xfeat/auto/2 a": times, "arosics/global/0 a": {"cases": 3}}
    lines = path_lines(settings, list(settings))
    assert lines[-2] == "| xfeat/auto/2 a | 2 | 0.20 | 1 | 0.50 |" and not any("arosics" in line for line in lines)
