"""Fixtures for the plugin's tests, which run in QGIS's own Python (see qgis_plugin/test.sh).

The core runs in its own environment, named by GEOREF_PYTHON; test cases are built with it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "qgis_plugin"))

_BUILD_CASE = """
import json, sys
from pathlib import Path
from georef.benchmark.cases import make_warp_case, s2_seasons_pairs
cases = [make_warp_case(s2_seasons_pairs(sys.argv[1], [("winter", "summer")], [tile])[0], Path(sys.argv[2]))
         for tile in sys.argv[3:]]
print(json.dumps([{"target": str(c.target), "reference": str(c.reference), "truth": c.truth.tolist()} for c in cases]))
"""


@pytest.fixture(scope="session")
def core_python() -> str:
    python = os.environ.get("GEOREF_PYTHON")
    if not python:
        pytest.fail("GEOREF_PYTHON must name the georef core's python (qgis_plugin/test.sh sets it)")
    return python


@pytest.fixture(scope="session")
def real_cases(core_python, tmp_path_factory) -> list[dict]:
    """A winter subtile of each tile of ../shared/data/s2-seasons misregistered by a known affine, and its
    summer reference."""
    data = REPO.parent / "shared" / "data" / "s2-seasons"
    if not (data / "manifest.json").exists():  # CI is given the data: its absence is a failure, not a skip
        pytest.fail(f"real data folder {data} is absent", pytrace=False)
    out = subprocess.run([core_python, "-c", _BUILD_CASE, str(data), str(tmp_path_factory.mktemp("case")),
                          "T35UNQ", "T36UUA", "T36UUU"], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


@pytest.fixture(scope="session")
def real_case(real_cases) -> dict:
    return real_cases[0]


def wait_for(task, timeout: float = 300.0) -> bool:
    """Run the event loop until an AlignTask's finished() has run; return whether it succeeded."""
    from qgis.PyQt.QtCore import QCoreApplication

    end = time.monotonic() + timeout
    while task.succeeded is None:
        if time.monotonic() > end:
            pytest.fail("the task did not finish in time")
        QCoreApplication.processEvents()
        time.sleep(0.05)
    return task.succeeded


def corner_error_px(path: str, truth: list) -> float:
    """Mean distance of the output's four corners from the truth's, in 10 m pixels."""
    import numpy as np
    from osgeo import gdal

    ds = gdal.Open(path)
    c, a, b, f, d, e = ds.GetGeoTransform()
    w, h = ds.RasterXSize, ds.RasterYSize
    corners = np.array([[0, 0, 1], [w, 0, 1], [w, h, 1], [0, h, 1]], float)
    out = corners @ np.array([[a, b, c], [d, e, f]]).T
    true = corners @ np.array(truth)[:2].T
    return float(np.linalg.norm(out - true, axis=1).mean() / 10)
