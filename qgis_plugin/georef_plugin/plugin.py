"""The plugin: a toolbar button, the core's install and settings actions, and the Processing provider."""

from __future__ import annotations

from qgis.core import Qgis, QgsApplication
from qgis.PyQt.QtWidgets import QAction, QFileDialog, QPushButton

from . import bridge
from .dialog import AlignDialog, InstallDialog
from .installer import InstallOptions, InstallResult
from .layers import add_results
from .provider import GeorefProvider
from .settings import configured_python, core_env_dir, set_python
from .task import CoreTask, align_task, install_task

MENU = "&georef"


class GeorefPlugin:
    """Adds "Auto-georeference" to the toolbar and the georef Processing provider."""

    def __init__(self, iface) -> None:
        self.iface = iface
        self.actions: list[QAction] = []
        self.provider = None
        self.dialog: AlignDialog | InstallDialog | None = None
        self.task: CoreTask | None = None  # keep a reference: QGIS drops tasks Python forgets

    def initProcessing(self) -> None:  # noqa: N802 - QGIS API
        self.provider = GeorefProvider()
        QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self) -> None:  # noqa: N802 - QGIS API
        self.initProcessing()
        run = QAction("Auto-georeference", self.iface.mainWindow())
        run.triggered.connect(self.show_dialog)
        install = QAction("Install the georef core…", self.iface.mainWindow())
        install.triggered.connect(self.show_install_dialog)
        settings = QAction("Set the georef core's Python…", self.iface.mainWindow())
        settings.triggered.connect(self.choose_python)
        self.iface.addToolBarIcon(run)
        for action in (run, install, settings):
            self.iface.addPluginToRasterMenu(MENU, action)
        self.actions = [run, install, settings]

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

    def show_install_dialog(self) -> None:
        python = configured_python()
        self.dialog = InstallDialog(core_env_dir(), bridge.core_version(python) if python else None,
                                    self.iface.mainWindow())
        self.dialog.accepted.connect(lambda: self.install_core(self.dialog.options()))
        self.dialog.show()

    def install_core(self, options: InstallOptions) -> CoreTask:
        """Install, repair or upgrade the core in the background; the setting is recorded once it answers."""
        task = install_task(options, configured_python(), self._installed,
                            lambda reason: self._install_failed(reason, task.configured_runs))
        self.task = task
        QgsApplication.taskManager().addTask(task)
        return task

    def _installed(self, result: InstallResult) -> None:
        set_python(result.python)
        self._bar("georef", f"the georef core {result.version} is {result.action} ({result.python})", Qgis.Success)

    def _install_failed(self, reason: str, configured_runs: bool) -> None:
        if not configured_runs:  # a failed repair: no setting that points at a broken core
            set_python(None)
        self._bar("georef", f"installing the georef core failed: {reason}", Qgis.Critical)

    def _core_python(self) -> str | None:
        """The core's Python; where there is none, the message bar offers to install it."""
        try:
            return bridge.find_python(configured_python())
        except bridge.CoreError as exc:
            bar = self.iface.messageBar()
            message = bar.createMessage("georef", str(exc))
            button = QPushButton("Install the georef core…", message)
            button.clicked.connect(self.show_install_dialog)
            message.layout().addWidget(button)
            bar.pushWidget(message, Qgis.Warning)
            return None

    def show_dialog(self) -> None:
        python = self._core_python()
        if python is None:
            return
        try:
            listing = bridge.core_listing(python)
        except bridge.CoreError as exc:
            self._bar("georef", str(exc), Qgis.Critical)
            return
        self.dialog = AlignDialog(listing, self.iface.mainWindow())
        self.dialog.accepted.connect(lambda: self.start(self.dialog.values()))
        self.dialog.show()

    def start(self, values: dict) -> CoreTask | None:
        """Start an alignment task with the dialog's values; expected problems go to the message bar."""
        missing = [name for name in ("target", "reference", "output") if not values.get(name)]
        if missing:
            self._bar("georef", f"choose the {', '.join(missing)}", Qgis.Warning)
            return None
        python = self._core_python()
        if python is None:
            return None
        self.task = align_task({"python": python, **values}, self._succeeded, self._failed)
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
