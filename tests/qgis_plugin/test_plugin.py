"""The plugin in real QGIS (headless): loading, the toolbar action, Processing, failures, cancel."""

from __future__ import annotations

import csv

import pytest
from qgis.core import QgsApplication, QgsProject, QgsRasterLayer, QgsVectorLayer

from conftest import REPO, corner_error_px, wait_for


@pytest.fixture
def plugin(qgis_iface, qgis_new_project, core_python, monkeypatch):
    monkeypatch.setenv("GEOREF_PYTHON", core_python)
    from georef_plugin.plugin import GeorefPlugin

    p = GeorefPlugin(qgis_iface)
    p.initGui()
    yield p
    p.unload()


def _messages(iface, level=None) -> list[str]:
    """Messages pushed to pytest-qgis's message bar (at one level, or all)."""
    from qgis.core import Qgis

    levels = [level] if level is not None else [Qgis.Info, Qgis.Warning, Qgis.Critical, Qgis.Success]
    return [m for lvl in levels for m in iface.messageBar().get_messages(lvl)]


def test_plugin_loads_and_unloads_cleanly(qgis_iface):
    import sys

    import qgis.utils

    for name in [m for m in sys.modules if m.startswith("georef_plugin")]:
        del sys.modules[name]  # loaded by QGIS's own importer, so that it can unload it
    qgis.utils.plugin_paths.insert(0, str(REPO / "qgis_plugin"))
    qgis.utils.updateAvailablePlugins()
    assert "georef_plugin" in qgis.utils.available_plugins
    assert qgis.utils.loadPlugin("georef_plugin")
    assert qgis.utils.startPlugin("georef_plugin")
    assert QgsApplication.processingRegistry().providerById("georef") is not None
    assert {a.name() for a in QgsApplication.processingRegistry().providerById("georef").algorithms()} == {
        "align", "batch", "exportgcps", "applygcps", "benchmark"}
    assert qgis.utils.unloadPlugin("georef_plugin")
    assert QgsApplication.processingRegistry().providerById("georef") is None


def test_toolbar_action_adds_aligned_raster_and_gcp_layer(plugin, qgis_iface, real_case, tmp_path):
    plugin.actions[0].trigger()  # "Auto-georeference"
    dialog = plugin.dialog
    assert dialog is not None and dialog.isVisible()
    dialog.target_file.setFilePath(real_case["target"])
    dialog.reference_file.setFilePath(real_case["reference"])
    out = tmp_path / "aligned.tif"
    dialog.output.setFilePath(str(out))
    dialog.accept()
    task = plugin.task
    assert task is not None
    progress = []
    task.progressChanged.connect(progress.append)
    assert wait_for(task), _messages(qgis_iface)
    assert any(0 < p < 100 for p in progress), progress  # from the core's stages: the task has no clock
    layers = list(QgsProject.instance().mapLayers().values())
    rasters = [lyr for lyr in layers if isinstance(lyr, QgsRasterLayer)]
    vectors = [lyr for lyr in layers if isinstance(lyr, QgsVectorLayer)]
    assert len(rasters) == 1 and len(vectors) == 1
    assert rasters[0].crs().authid() == "EPSG:32635" and vectors[0].crs().authid() == "EPSG:32635"
    report = task.result.report
    assert vectors[0].featureCount() == report["matches"]
    assert "res_px" in vectors[0].fields().names() and vectors[0].renderer().type() == "graduatedSymbol"
    assert corner_error_px(str(out), real_case["truth"]) < 1.0
    from qgis.core import Qgis

    assert any("estimated error" in m and "inliers" in m for m in _messages(qgis_iface, Qgis.Success))
    for layer in layers:  # Python-owned layers go before QGIS exits
        QgsProject.instance().removeMapLayer(layer.id())


def test_processing_align(qgis_processing, core_python, real_case, tmp_path, monkeypatch):
    monkeypatch.setenv("GEOREF_PYTHON", core_python)
    import processing
    from georef_plugin.provider import GeorefProvider

    provider = GeorefProvider()
    QgsApplication.processingRegistry().addProvider(provider)
    try:
        out, gcps = tmp_path / "aligned.tif", tmp_path / "gcps.gpkg"
        result = processing.run("georef:align", {
            "TARGET": real_case["target"], "REFERENCE": real_case["reference"], "MATCHER": 0, "MODEL": 0,
            "OUTPUT": str(out), "GCPS": str(gcps)})
        assert result["OUTPUT"] == str(out) and result["INLIERS"] > 100 and 0 < result["CE90_M"] < 10
        assert corner_error_px(str(out), real_case["truth"]) < 1.0
        layer = QgsVectorLayer(f"{gcps}|layername=gcps", "gcps", "ogr")
        assert layer.isValid() and layer.crs().authid() == "EPSG:32635" and layer.featureCount() > 100
        # the other algorithms: GCPs to a QGIS .points file, and applied back with a polynomial
        points = tmp_path / "edited.points"
        processing.run("georef:exportgcps", {"SOURCE": str(gcps), "OUTPUT": str(points)})
        assert points.read_text().splitlines()[1] == "mapX,mapY,sourceX,sourceY,enable,dX,dY,residual"
        fitted = tmp_path / "fitted.tif"
        processing.run("georef:applygcps", {"GCPS": str(points), "TARGET": real_case["target"], "MODEL": 0,
                                            "OUTPUT": str(fitted)})
        assert corner_error_px(str(fitted), real_case["truth"]) < 1.5
        bench = tmp_path / "bench"
        processing.run("georef:benchmark", {"PAIRS": str(REPO.parent / "shared" / "data" / "s2-seasons"),
                                            "MATCHERS": "xfeat", "LIMIT": "1", "OUTPUT": str(bench)})
        assert (bench / "report.md").exists() and len((bench / "cases.csv").read_text().splitlines()) == 2
    finally:
        QgsApplication.processingRegistry().removeProvider(provider)


def test_processing_align_passes_the_advanced_options(qgis_processing, core_python, real_case, tmp_path,
                                                      monkeypatch):
    monkeypatch.setenv("GEOREF_PYTHON", core_python)
    import numpy as np
    import processing
    from osgeo import gdal
    from qgis.core import QgsProcessingException
    from georef_plugin.provider import GeorefProvider

    target = gdal.Open(real_case["target"])
    width, height = target.RasterXSize, target.RasterYSize
    mask = tmp_path / "left_half.tif"
    flags = np.zeros((height, width), np.uint16)
    flags[:, :width // 2] = 0b1000  # bit 3, "cloud" in Landsat's QA_PIXEL
    flags[:20, width // 2:] = 0b100  # bit 2 alone: kept
    ds = gdal.GetDriverByName("GTiff").Create(str(mask), width, height, 1, gdal.GDT_UInt16)
    ds.GetRasterBand(1).WriteArray(flags)
    ds = None
    provider = GeorefProvider()
    QgsApplication.processingRegistry().addProvider(provider)
    try:
        gcps = tmp_path / "masked.gpkg"
        parameters = {"TARGET": real_case["target"], "REFERENCE": real_case["reference"], "MATCHER": 0, "MODEL": 0,
                      "OUTPUT": str(tmp_path / "masked.tif"), "GCPS": str(gcps), "MAX_SHIFT": 700,
                      "MASK_TARGET": str(mask), "MASK_TARGET_VALUES": "bits=3"}
        processing.run("georef:align", parameters)
        assert corner_error_px(str(tmp_path / "masked.tif"), real_case["truth"]) < 1.0
        columns = [f["px"] for f in QgsVectorLayer(f"{gcps}|layername=gcps", "gcps", "ogr").getFeatures()]
        assert len(columns) > 20 and min(columns) > width / 2  # no tie point under the mask
        for changed, expected in (({"MASK_TARGET": None}, "target mask values are given, but no target mask"),
                                  ({"MASK_TARGET_VALUES": "bits=16"}, "bit 16 is not one of the 0-15")):
            with pytest.raises(QgsProcessingException, match=expected):
                processing.run("georef:align", {**parameters, **changed})
    finally:
        QgsApplication.processingRegistry().removeProvider(provider)


def test_failing_case_shows_the_reason_and_adds_nothing(plugin, qgis_iface, real_case, tmp_path, core_python):
    import subprocess

    noise = tmp_path / "noise.tif"
    subprocess.run([core_python, "-c", (
        "import numpy as np, rasterio, sys\n"
        "with rasterio.open(sys.argv[1]) as src: p = src.profile\n"
        "with rasterio.open(sys.argv[2], 'w', **p) as dst:\n"
        "    dst.write(np.random.default_rng(0).integers(0, 255, (p['count'], p['height'], p['width'])).astype(p['dtype']))"),
        real_case["target"], str(noise)], check=True)
    out = tmp_path / "never.tif"
    task = plugin.start({"target": str(noise), "reference": real_case["reference"], "output": str(out),
                         "matcher": "xfeat", "model": "affine", "gcp_layer": None})
    assert not wait_for(task)
    from qgis.core import Qgis

    messages = _messages(qgis_iface, Qgis.Critical)
    assert any("noise.tif" in m and ("quality gate" in m or "no alignment" in m) for m in messages), messages
    assert QgsProject.instance().mapLayers() == {}
    assert not out.exists()


@pytest.mark.parametrize("running", [False, True], ids=["before-start", "while-running"])
def test_cancel_stops_the_task(plugin, qgis_iface, real_case, tmp_path, running):
    import time

    from qgis.PyQt.QtCore import QCoreApplication

    out = tmp_path / "canceled.tif"
    task = plugin.start({"target": real_case["target"], "reference": real_case["reference"], "output": str(out),
                         "matcher": "xfeat", "model": "affine", "gcp_layer": None})
    # While running: once the core reports its first stage (a fixed delay raced the core's end).
    end = time.monotonic() + 60
    while running and task.progress() == 0 and time.monotonic() < end:
        QCoreApplication.processEvents()
        time.sleep(0.01)
    task.cancel()
    assert not wait_for(task) and task.reason == "canceled"
    assert QgsProject.instance().mapLayers() == {}
    assert not out.exists() and not list(tmp_path.glob(".*part*"))


def test_processing_batch_keeps_what_aligns(qgis_processing, core_python, real_cases, tmp_path, monkeypatch):
    monkeypatch.setenv("GEOREF_PYTHON", core_python)
    import processing
    from qgis.core import QgsProcessingContext, QgsProcessingFeedback
    from georef_plugin.provider import GeorefProvider

    corrupt = tmp_path / "corrupt.tif"
    corrupt.write_bytes(b"II*\x00" + bytes(500))
    provider = GeorefProvider()
    QgsApplication.processingRegistry().addProvider(provider)
    try:
        context, progress = QgsProcessingContext(), []
        feedback = QgsProcessingFeedback()
        feedback.progressChanged.connect(progress.append)
        table = tmp_path / "pairs.csv"  # a table: a corrupt file is no layer Processing would accept
        rows = [f"{case['target']},{case['reference']}" for case in real_cases]
        table.write_text("\n".join(["target,reference", *rows, f"{corrupt},{real_cases[0]['reference']}"]) + "\n")
        result = processing.run("georef:batch", {"TABLE": str(table), "OUTPUT": str(tmp_path / "batch")},
                                context=context, feedback=feedback)
        assert result["ALIGNED"] == 3 and result["FAILED"] == 1
        loading = context.layersToLoadOnCompletion()
        aligned = sorted(path for path in loading if path.endswith(".tif"))
        assert len(aligned) == 3 and len(loading) == 4 and any("footprints.gpkg" in path for path in loading)
        with open(tmp_path / "batch" / "results.csv", newline="") as f:
            outputs = {row["target"]: row["output"] for row in csv.DictReader(f)}
        for case in real_cases:
            assert outputs[case["target"]] in aligned and corner_error_px(outputs[case["target"]], case["truth"]) < 1.0
        assert progress and max(progress) >= 50  # the pairs' progress, from the core
        # run as from the toolbox: the layers go into one group
        result = processing.runAndLoadResults("georef:batch", {"TABLE": str(table), "OUTPUT": str(tmp_path / "tree")})
        group = QgsProject.instance().layerTreeRoot().findGroup("georef batch: tree")
        assert group is not None and len(group.findLayers()) == 4
        assert sum(isinstance(node.layer(), QgsRasterLayer) for node in group.findLayers()) == 3
        QgsProject.instance().clear()
        # many targets against one reference, given as layers
        result = processing.run("georef:batch", {"TARGETS": [real_cases[0]["target"]], "REFERENCE": real_cases[0]["reference"],
                                                 "OUTPUT": str(tmp_path / "series")})
        assert result["ALIGNED"] == 1 and result["FAILED"] == 0
    finally:
        QgsApplication.processingRegistry().removeProvider(provider)
