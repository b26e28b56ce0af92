"""The plugin: a toolbar button, a settings action and the Processing provider."""

from __future__ import annotations

from qgis.core import Qgis, QgsApplication
from qgis.PyQt.QtWidgets import QAction, QFileDialog

from . import bridge
from .dialog import AlignDialog
from .layers import add_results
from .provider import GeorefProvider
from .settings import configured_python, set_python
from .task import AlignTask

MENU = "&georef"


class GeorefPlugin:
    """Adds "Auto-georeference" to the toolbar and the georef Processing provider."""

    def __init__(self, iface) -> None:
        self.iface = iface
        self.actions: list[QAction] = []
        self.provider = None
        self.dialog: AlignDialog | None = None
        self.task: AlignTask | None = None  # keep a reference: QGIS drops tasks Python forgets

    def initProcessing(self) -> None:  # noqa: N802 - QGIS API
        self.provider = GeorefProvider()
        QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self) -> None:  # noqa: N802 - QGIS API
        self.initProcessing()
        run = QAction("Auto-georeference", self.iface.mainWindow())
        run.triggered.connect(self.show_dialog)
        settings = QAction("Set the georef core's Python…", self.iface.mainWindow())
        settings.triggered.connect(self.choose_python)
        self.iface.addToolBarIcon(run)
        for action in (run, settings):
            self.iface.addPluginToRasterMenu(MENU, action)
        self.actions = [run, settings]

    def unload(self) -> None:
        for action in self.actions:
            self.iface.removePluginRasterMenu(MENU, action)
            self.iface.removeToolBarIcon(action)
        self.actions = []
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None

    def choose_python(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self.iface.mainWindow(), "Python of the georef core")
        if path:
            set_python(path)

    def show_dialog(self) -> None:
        try:
            listing = bridge.core_listing(bridge.find_python(configured_python()))
        except bridge.CoreError as exc:
            self._bar("georef", str(exc), Qgis.Critical)
            return
        self.dialog = AlignDialog(listing, self.iface.mainWindow())
        self.dialog.accepted.connect(lambda: self.start(self.dialog.values()))
        self.dialog.show()

    def start(self, values: dict) -> AlignTask | None:
        """Start an alignment task with the dialog's values; expected problems go to the message bar."""
        missing = [name for name in ("target", "reference", "output") if not values.get(name)]
        if missing:
            self._bar("georef", f"choose the {', '.join(missing)}", Qgis.Warning)
            return None
        try:
            python = bridge.find_python(configured_python())
        except bridge.CoreError as exc:
            self._bar("georef", str(exc), Qgis.Critical)
            return None
        self.task = AlignTask({"python": python, **values}, self._succeeded, self._failed)
        QgsApplication.taskManager().addTask(self.task)
        return self.task

    def _succeeded(self, result: bridge.Result) -> None:
        add_results(result.output, result.gcps)
        r = result.report
        accuracy = "unknown" if r["estimated_ce90_m"] is None else f"{r['estimated_ce90_m']:.1f} m"
        self._bar("georef", f"aligned: estimated error {accuracy} (CE90), {r['inliers']} inliers; gate {r['status']}",
                  Qgis.Success)

    def _failed(self, reason: str) -> None:
        self._bar("georef", reason, Qgis.Critical)

    def _bar(self, title: str, text: str, level) -> None:
        self.iface.messageBar().pushMessage(title, text, level=level, duration=0)
