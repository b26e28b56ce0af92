"""Hostile and mistaken input through the command line: a clear line and the right exit code, never a
traceback, never a clobbered or half-written file; and the cases that work keep working."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from click.testing import CliRunner

from georef.cli.main import cli

from conftest import crop, write_tif


def run(*args, env=None):
    return CliRunner(env=env).invoke(cli, [str(a) for a in args], prog_name="georef")


def listing(folder: Path) -> dict[str, int]:
    """Every file under ``folder`` with its modification time, to see what a command changed."""
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


def assert_refused(result, *fragments, code=2):
    """One line on stderr naming the problem, the exit code, no traceback."""
    assert result.exit_code == code, (result.exit_code, result.stderr, result.stdout)
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    if code == 2:
        assert len(lines) == 1, lines
    error = [line for line in lines if line.startswith("georef: error:")]
    assert len(error) == 1, lines
    for fragment in fragments:
        assert fragment in error[0], error[0]


@pytest.fixture
def workdir(pair, tmp_path):
    """A folder holding the pair's inputs; tests compare its files before and after."""
    return tmp_path


ALIGN_REFUSED_BEFORE_WORK = {
    "max-shift nan": (["--max-shift", "nan"], ["--max-shift", "not a finite number"]),
    "max-shift inf": (["--max-shift", "inf"], ["--max-shift", "not a finite number"]),
    "max-shift negative": (["--max-shift", "-5"], ["--max-shift", "out of range"]),
    "threshold zero": (["--threshold", "0"], ["--threshold", "out of range"]),
    "max-repeat above 1": (["--max-repeat", "1.5"], ["--max-repeat", "out of range"]),
    "approx-center off the globe": (["--approx-center", "999", "999"], ["--approx-center", "longitude"]),
    "unknown CRS": (["--target-crs", "EPSG:99999999"], ["--target-crs", "not a CRS"]),
    "weights for sift": (["--matcher", "sift", "--weights", "x.pt"], ["--weights does not apply to sift"]),
    "band names on a GeoTIFF": (["--bands", "B04"], ["band names (B04)", "--bands"]),
    "target-res without warp": (["--target-res", "20"], ["--target-res applies to a warped output only (--warp)"]),
    "too few GCPs asked": (["--gcps", "2"], ["--gcps"]),
    "output is the report": (["--report", "{out}"], ["is the destination of two outputs"]),
    "output in a file's place": (["-o", "{target}/x.tif"], ["is not a folder"]),
    "report in a file's place": (["--report", "{target}/r.json"], ["is not a folder"]),
    "output is a folder": (["-o", "{dir}"], []),
    "in-place without sidecar": (["--in-place"], ["--in-place applies to --sidecar only"]),
    "in-place with an output": (["--sidecar", "--in-place"], ["--in-place writes beside the target", "-o/--output"]),
    "sidecar with GCPs": (["--sidecar", "--gcps", "8"], ["--sidecar carries a geotransform only"]),
    "sidecar under another extension": (["--sidecar", "-o", "{dir}/x.jp2"], ["must keep the target's extension"]),
    "VRT of a warp": (["--warp", "-o", "{dir}/x.vrt"], ["--warp writes a Cloud-Optimized GeoTIFF"]),
    "mask of another extent": (["--mask-ref", "{target}"], ["--mask-ref covers", "but the reference"]),
    "mask bit beyond the band": (["--mask-ref", "{reference}:bits=16"], ["bit 16 is not one of the 0-15"]),
}


@pytest.mark.parametrize("case", list(ALIGN_REFUSED_BEFORE_WORK))
def test_align_refuses_bad_options_before_any_work(pair, workdir, case):
    extra, fragments = ALIGN_REFUSED_BEFORE_WORK[case]
    names = {"out": workdir / "out.tif", "target": pair.target, "reference": pair.reference, "dir": workdir}
    extra = [e.format(**names) if isinstance(e, str) else e for e in extra]
    args = ["align", pair.target, "--ref", pair.reference, *extra]
    if "-o" not in extra:
        args += ["-o", names["out"]]
    before = listing(workdir)
    assert_refused(run(*args), *fragments)
    assert listing(workdir) == before


def test_output_colliding_with_a_report_companion_is_refused(pair, workdir):
    before = listing(workdir)
    assert_refused(run("align", pair.target, "--ref", pair.reference, "-o", workdir / "r.html", "--report",
                       workdir / "r.json"), "r.html", "two outputs")
    assert listing(workdir) == before


def test_existing_report_companions_need_overwrite(pair, workdir):
    (workdir / "r.md").write_text("my notes")
    before = listing(workdir)
    assert_refused(run("align", pair.target, "--ref", pair.reference, "-o", workdir / "o.tif", "--report",
                       workdir / "r.json"), "r.md: exists", "--overwrite")
    assert listing(workdir) == before and (workdir / "r.md").read_text() == "my notes"


def test_special_files_are_never_replaced(pair, workdir):
    fifo = workdir / "pipe.tif"
    os.mkfifo(fifo)
    link = workdir / "link.tif"
    (workdir / "real.tif").write_bytes(b"keep")
    link.symlink_to(workdir / "real.tif")
    for path, fragment in ((Path("/dev/null"), "not a regular file"), (fifo, "not a regular file"),
                           (link, "symbolic link")):
        assert_refused(run("align", pair.target, "--ref", pair.reference, "-o", path, "--overwrite"), fragment)
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and link.is_symlink() and (workdir / "real.tif").read_bytes() == b"keep"


def test_no_output_is_a_usage_error_and_dry_run_writes_only_the_report(pair, workdir):
    assert_refused(run("align", pair.target, "--ref", pair.reference), "-o OUT.tif", "--dry-run")
    assert_refused(run("align", pair.target, "--ref", pair.reference, "-o", workdir / "o.tif", "--dry-run"),
                   "exclude each other")
    before = set(listing(workdir))
    result = run("align", pair.target, "--ref", pair.reference, "--dry-run", "--report", workdir / "r.json")
    assert result.exit_code == 0, result.stderr
    assert set(listing(workdir)) - before == {"r.json", "r.md", "r.html", "r_residuals.png", "r_histogram.png"}
    assert json.loads((workdir / "r.json").read_text())["output"] is None


def _weights_files(folder: Path) -> dict[str, Path]:
    folder.mkdir(exist_ok=True)
    files = {"random bytes": folder / "random.pt", "a text file": folder / "notes.pt", "another model": folder / "other.pt"}
    files["random bytes"].write_bytes(np.random.default_rng(0).bytes(4096))
    files["a text file"].write_text("these are not weights\n")
    torch.save({"encoder.weight": torch.zeros(3, 3)}, files["another model"])
    return files


@pytest.mark.parametrize("kind", ["random bytes", "a text file", "another model"])
def test_unusable_weight_files_are_named(pair, workdir, kind):
    weights = _weights_files(workdir / "w")[kind]
    before = listing(workdir)
    assert_refused(run("align", pair.target, "--ref", pair.reference, "-o", workdir / "o.tif", "--weights", weights),
                   weights.name)
    assert listing(workdir) == before


def test_corrupt_cached_weights_are_named_offline(pair, workdir, tmp_path_factory):
    from georef.matchers import create_matcher

    home = tmp_path_factory.mktemp("home")
    (home / "weights").mkdir()
    (home / "weights" / "xfeat.pt").write_bytes(b"cut short")
    create_matcher.cache_clear()  # matchers load their weights once per process
    try:
        result = run("align", pair.target, "--ref", pair.reference, "-o", workdir / "o.tif",
                     env={"GEOREF_HOME": str(home), "GEOREF_OFFLINE": "1"})
    finally:
        create_matcher.cache_clear()
    assert_refused(result, "xfeat.pt: is corrupt")
    assert not (workdir / "o.tif").exists()


def test_warp_of_an_absurd_size_is_refused_before_writing(pair, workdir):
    before = listing(workdir)
    assert_refused(run("align", pair.target, "--ref", pair.reference, "-o", workdir / "w.tif", "--warp",
                       "--target-res", "0.001"), "more than", "--max-output-pixels", "--target-res")
    assert listing(workdir) == before


def test_non_finite_pixels_without_nodata_are_no_data(pair, workdir):
    with rasterio.open(pair.target) as src:
        data, profile = src.read().astype(np.float32), src.profile
    data[:, 100:250, 100:250] = np.nan
    data[:, 300:320, :] = np.inf
    profile.update(dtype="float32", nodata=None)
    with rasterio.open(workdir / "nan.tif", "w", **profile) as dst:
        dst.write(data)
    result = run("align", workdir / "nan.tif", "--ref", pair.reference, "-o", workdir / "o.tif")
    assert result.exit_code == 0, result.stderr
    assert "quality gate passed" in result.stderr


LOCAL_CRS = 'LOCAL_CS["site grid",UNIT["metre",1]]'


def with_georeference(source: Path, path: Path, **profile) -> Path:
    """A copy of ``source`` under another CRS or geotransform."""
    with rasterio.open(source) as src:
        data, meta = src.read(), src.profile
    meta.update(profile)
    with rasterio.open(path, "w", **meta) as dst:
        dst.write(data)
    return path


@pytest.mark.parametrize("which", ["target", "reference"])
def test_a_crs_proj_cannot_relate_to_the_other_is_named(pair, workdir, which):
    local = with_georeference(getattr(pair, which), workdir / "local.tif", crs=LOCAL_CRS)
    target, reference = (local, pair.reference) if which == "target" else (pair.target, local)
    assert_refused(run("align", target, "--ref", reference, "-o", workdir / "o.tif"),
                   "PROJ knows no way from its CRS", "site grid" if which == "target" else "UTM")


def test_inputs_in_one_local_crs_align(pair, workdir):
    target, reference = (with_georeference(path, workdir / f"local_{path.name}", crs=LOCAL_CRS)
                         for path in (pair.target, pair.reference))
    result = run("align", target, "--ref", reference, "-o", workdir / "o.tif")
    assert result.exit_code == 0, result.stderr
    with rasterio.open(workdir / "o.tif") as out:
        assert "site grid" in out.crs.to_wkt()
        assert abs(out.transform.c - pair.truth.c) < 5 and abs(out.transform.f - pair.truth.f) < 5


def test_a_target_of_far_finer_pixels_is_refused_before_reading(pair, workdir):
    # 1 cm pixels against the 10 m reference: the reference around it would have been read at 1 cm (killed
    # for memory before).
    with rasterio.open(pair.target) as src:
        fine = src.transform * rasterio.Affine.scale(0.001)
    tiny = with_georeference(pair.target, workdir / "cm.tif", transform=fine)
    assert_refused(run("align", tiny, "--ref", pair.reference, "-o", workdir / "o.tif"),
                   "would be", "far finer than the reference's", "--max-shift")


@pytest.mark.parametrize("which", ["target", "reference"])
def test_complex_bands_are_refused(pair, workdir, which):
    # Their real part was matched, and a warp of them ended in "internal error: Unknown GDAL Error".
    with rasterio.open(getattr(pair, which)) as src:
        data, profile = src.read().astype(np.complex64), src.profile
    profile.update(dtype="complex64")
    with rasterio.open(workdir / "c.tif", "w", **profile) as dst:
        dst.write(data)
    target, reference = (workdir / "c.tif", pair.reference) if which == "target" else (pair.target, workdir / "c.tif")
    assert_refused(run("align", target, "--ref", reference, "--warp", "-o", workdir / "o.tif"),
                   "c.tif: band 1 holds complex numbers (complex64)")


@pytest.mark.parametrize("command", ["benchmark", "scene-benchmark"])
def test_a_negative_seed_is_a_usage_error(workdir, command):
    # It ended in "internal error: ValueError: expected non-negative integer" once the cases were drawn.
    where = [workdir] if command == "benchmark" else []
    result = run(command, *where, "--out", workdir / "bench", "--seed", "-1")
    assert result.exit_code == 2 and "--seed" in result.stderr
    assert ("non-negative" if command == "benchmark" else "x>=0") in result.stderr
    assert not (workdir / "bench").exists()


def test_exit_3_without_any_alignment_still_writes_the_report(pair, workdir, scene):
    data, _ = crop(scene, 0, 0, 300)
    plain = write_tif(workdir / "plain.tif", data, None, None)
    result = run("align", plain, "--ref", pair.reference, "-o", workdir / "o.tif", "--report", workdir / "r.json")
    assert_refused(result, "not found in the reference", "--approx-center", code=3)
    report = json.loads((workdir / "r.json").read_text())
    assert report["status"] == "failed" and "not found" in report["reasons"][0] and report["alignment"] is None
    assert not (workdir / "o.tif").exists()


@pytest.mark.parametrize("content", [b"[1, 2, 3]", b'"a string"', bytes(range(256)), b'{"status": "failed", '
                                     b'"alignment": null}'], ids=["list", "string", "binary", "failed report"])
def test_gcps_of_a_file_that_is_no_report(workdir, content):
    (workdir / "r.json").write_bytes(content)
    before = listing(workdir)
    assert_refused(run("gcps", workdir / "r.json", "--to", workdir / "g.csv"), "r.json")
    assert listing(workdir) == before


@pytest.mark.parametrize("name", ["g.geojson", "g.gpkg", "g.shp"])
def test_gcps_of_a_vector_file_that_is_no_vector_data(workdir, name):
    (workdir / name).write_text("#CRS: EPSG:32618\nmapX,mapY,sourceX,sourceY,enable\n400000,4000000,10,-10,1\n")
    before = listing(workdir)
    assert_refused(run("gcps", workdir / name, "--to", workdir / "g.csv"), f"{name}: cannot be read as a point layer")
    assert listing(workdir) == before


def _points(path: Path, rows: list[tuple[float, float, float, float]], crs: str = "EPSG:32618") -> Path:
    from rasterio.crs import CRS

    lines = [f"#CRS: {CRS.from_user_input(crs).to_wkt()}", "mapX,mapY,sourceX,sourceY,enable"]
    lines += [f"{mx},{my},{px},{-py},1" for mx, my, px, py in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


GOOD = [(400000 + 10 * x, 4000000 - 10 * y, x, y) for x, y in ((10, 10), (500, 20), (30, 480), (490, 470), (250, 260))]
BAD_GCPS = {
    "all NaN": ([(float("nan"),) * 4] * 5, "affine", "not a finite number"),
    "some inf": (GOOD[:4] + [(float("inf"), 4000000.0, 5.0, 5.0)], "affine", "GCP 5 has a coordinate"),
    "duplicated": (GOOD + [GOOD[0]], "affine", "share the pixel position"),
    "duplicated map positions": (GOOD[:4] + [(GOOD[0][0], GOOD[0][1], 77.0, 99.0)], "affine", "share the map position"),
    "collinear": ([(400000 + 10 * k, 4000000 - 10 * k, k, k) for k in (0, 100, 200, 300)], "affine", "on one line"),
    "too few": (GOOD[:2], "affine", "needs at least 3"),
    "singular": ([(400000.0, 4000000.0 + k, 10.0 * k, 7.0 * k + (k % 2) * 50) for k in range(5)], "affine",
                 "singular"),
}


@pytest.mark.parametrize("case", list(BAD_GCPS))
def test_fit_refuses_gcps_that_cannot_determine_the_model(pair, workdir, case):
    rows, model, fragment = BAD_GCPS[case]
    points = _points(workdir / "g.points", rows)
    before = listing(workdir)
    assert_refused(run("fit", points, pair.target, "-o", workdir / "o.tif", "--model", model, "--report",
                       workdir / "f.json"), "g.points", fragment)
    assert listing(workdir) == before


def test_fit_reports_how_far_the_gcps_move_the_target(pair, workdir):
    with rasterio.open(pair.target) as ds:
        claim = ds.transform
    true = rasterio.Affine.translation(-120, 70) * claim  # the pair's target claims +120 m, -70 m
    rows = [(*(true * (x, y)), x, y) for x, y in ((10, 10), (500, 20), (30, 480), (490, 470))]
    points = _points(workdir / "g.points", rows, "EPSG:32618")
    result = run("fit", points, pair.target, "-o", workdir / "o.tif", "--model", "shift", "--report",
                 workdir / "f.json")
    assert result.exit_code == 0, result.stderr
    assert json.loads((workdir / "f.json").read_text())["shift_m"] == pytest.approx(np.hypot(120, 70), abs=0.01)
    assert "moved 139 m" in result.stderr


def test_shift_from_a_single_gcp(pair, workdir):
    points = _points(workdir / "one.points", GOOD[:1])
    result = run("fit", points, pair.target, "-o", workdir / "o.tif", "--model", "shift")
    assert result.exit_code == 0, result.stderr


def test_existing_output_is_kept_without_overwrite_and_replaced_with_it(pair, workdir):
    out = workdir / "o.tif"
    out.write_bytes(b"old")
    assert_refused(run("align", pair.target, "--ref", pair.reference, "-o", out), "o.tif: exists", "--overwrite")
    assert out.read_bytes() == b"old"
    result = run("align", pair.target, "--ref", pair.reference, "-o", out, "--overwrite")
    assert result.exit_code == 0 and out.read_bytes() != b"old"


def _start(args: list, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "georef", *map(str, args)], cwd=cwd, stderr=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, text=True)


#: ``python -m georef`` (the front ends' entry), signalling itself once the raster is staged and before the
#: report is written: a signal sent from outside lands there only by timing (a loaded machine finished the
#: whole write before it). SIGINT is ignored first, as a child inherits it from a parent started in the
#: background: the front ends cancel with SIGINT, and the core must act on it all the same.
_SIGNALLED_WHILE_WRITING = """
import os, pathlib, runpy, signal, sys
from georef import workflow

signal.signal(signal.SIGINT, signal.SIG_IGN)
write_report = workflow.write_report

def signalled(*args, **kwargs):
    print("staged:", sorted(p.name.split(".part")[1] for p in pathlib.Path.cwd().glob(".*part*")), file=sys.stderr)
    os.kill(os.getpid(), {signum})
    return write_report(*args, **kwargs)

workflow.write_report = signalled
runpy.run_module("georef", run_name="__main__", alter_sys=True)
"""


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"])
def test_a_signal_while_writing_leaves_nothing_behind(pair, workdir, signum, code):
    """Signalled in the write stage, the raster staged and the report not yet written."""
    out, report = workdir / "o.tif", workdir / "r.json"
    program = _SIGNALLED_WHILE_WRITING.format(signum=int(signum))
    proc = subprocess.run([sys.executable, "-c", program, "align", pair.target, "--ref", pair.reference, "-o", out,
                           "--report", report], cwd=workdir, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                          text=True, timeout=120)
    rest = proc.stderr
    assert "staged: ['.tif']" in rest, rest  # the signal came with the raster written to its temporary file
    assert proc.returncode == code, rest
    assert f"georef: {'interrupted' if signum == signal.SIGINT else 'terminated'}; nothing written" in rest
    assert "Traceback" not in rest
    assert not out.exists() and not report.exists() and not list(workdir.glob(".*part*"))


def test_two_runs_racing_for_one_new_path_cannot_both_win(pair, workdir):
    out = workdir / "o.tif"
    procs = [_start(["-q", "align", pair.target, "--ref", pair.reference, "-o", out], workdir) for _ in range(2)]
    codes = sorted(p.wait(timeout=120) for p in procs)
    errors = [p.stderr.read() for p in procs]
    assert codes == [0, 2], errors
    assert any("o.tif" in e and ("exists" in e or "created by someone else" in e) for e in errors)
    assert "Traceback" not in "".join(errors) and not list(workdir.glob(".*part*"))
