"""Run inside QGIS desktop (qgis --code): open the plugin's dialog, save a screenshot, quit.

Reads GEOREF_SCREENSHOT (PNG path). Used by test_screenshot.py under Xvfb.
"""

import os

import qgis.utils
from qgis.PyQt.QtCore import QTimer
from qgis.PyQt.QtWidgets import QApplication

qgis.utils.updateAvailablePlugins()
qgis.utils.loadPlugin("georef_plugin")
qgis.utils.startPlugin("georef_plugin")
plugin = qgis.utils.plugins["georef_plugin"]


def shoot():
    plugin.actions[0].trigger()  # the toolbar's "Auto-georeference"
    QTimer.singleShot(1500, save)


def save():
    QApplication.primaryScreen().grabWindow(0).save(os.environ["GEOREF_SCREENSHOT"], "PNG")
    QApplication.instance().exit(0)


QTimer.singleShot(4000, shoot)
