"""QGIS desktop under Xvfb with the plugin's dialog open: the screenshot must show something."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess

import pytest

from conftest import REPO


@pytest.mark.skipif(shutil.which("xvfb-run") is None or shutil.which("qgis") is None,
                    reason="needs xvfb-run and the qgis desktop (apt: xvfb qgis)")
def test_desktop_screenshot_with_the_dialog_open(tmp_path):
    from qgis.PyQt.QtGui import QImage

    png = tmp_path / "qgis_dialog.png"
    env = {**os.environ, "QGIS_PLUGINPATH": str(REPO / "qgis_plugin"), "GEOREF_SCREENSHOT": str(png),
           "QT_QPA_PLATFORM": "xcb", "HOME": str(tmp_path)}
    # In a session of its own, so that a timeout kills QGIS and Xvfb too, not xvfb-run alone.
    desktop = subprocess.Popen(["xvfb-run", "-a", "-s", "-screen 0 1280x800x24", "qgis", "--nologo",
                                "--noversioncheck", "--code", str(REPO / "tests" / "qgis_plugin" / "screenshot_script.py")],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        output, _ = desktop.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(desktop.pid, signal.SIGKILL)
        output, _ = desktop.communicate()
    assert png.exists(), f"QGIS saved no screenshot: {output.decode(errors='replace')[-2000:]}"
    image = QImage(str(png))
    assert image.width() >= 800 and image.height() >= 600
    colours = {image.pixel(x, y) for x in range(0, image.width(), 16) for y in range(0, image.height(), 16)}
    assert len(colours) > 20  # not blank
    if os.environ.get("GEOREF_SCREENSHOT_COPY"):
        shutil.copy(png, os.environ["GEOREF_SCREENSHOT_COPY"])
