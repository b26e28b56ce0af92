"""The dialogs: "Auto-georeference" and "Install the georef core"."""

from __future__ import annotations

from pathlib import Path

from qgis.core import QgsMapLayerProxyModel
from qgis.gui import QgsFileWidget, QgsMapLayerComboBox
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtWidgets import QCheckBox, QComboBox, QDialog, QDialogButtonBox, QFormLayout, QLabel, QLineEdit

from .installer import InstallOptions


class AlignDialog(QDialog):
    """Target and reference (project layers or files), matcher, model, output, GCP layer option.

    Args:
        listing: the core's matchers, models and defaults (:func:`bridge.core_listing`).
        parent: the parent window.
    """

    def __init__(self, listing: dict, parent=None) -> None:
        super().__init__(parent)
        self.setWindowTitle("georef: Auto-georeference")
        form = QFormLayout(self)
        self.target = QgsMapLayerComboBox(self)
        self.target_file = QgsFileWidget(self)
        self.reference = QgsMapLayerComboBox(self)
        self.reference_file = QgsFileWidget(self)
        for combo in (self.target, self.reference):
            combo.setFilters(QgsMapLayerProxyModel.RasterLayer)
            combo.setAllowEmptyLayer(True)
        self.matcher = QComboBox(self)
        for m in listing["matchers"]:
            self.matcher.addItem(m["name"])
            self.matcher.setItemData(self.matcher.count() - 1, m["description"], Qt.ToolTipRole)
        self.matcher.setCurrentText(listing["defaults"]["matcher"])
        self.model = QComboBox(self)
        self.model.addItems(listing["models"])
        self.model.setCurrentText(listing["defaults"]["model"])
        self.output = QgsFileWidget(self)
        self.output.setStorageMode(QgsFileWidget.SaveFile)
        self.output.setFilter("GeoTIFF (*.tif)")
        self.add_gcps = QCheckBox("Add GCP layer (residuals as attributes)", self)
        self.add_gcps.setChecked(True)
        form.addRow("Target layer", self.target)
        form.addRow("... or target file", self.target_file)
        form.addRow("Reference layer", self.reference)
        form.addRow("... or reference file", self.reference_file)
        form.addRow("Matcher", self.matcher)
        form.addRow("Transform model", self.model)
        form.addRow("Output GeoTIFF", self.output)
        form.addRow(self.add_gcps)
        buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel, self)
        buttons.button(QDialogButtonBox.Ok).setText("Run")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    @staticmethod
    def _path(combo: QgsMapLayerComboBox, file_widget: QgsFileWidget) -> str:
        layer = combo.currentLayer()
        return layer.source() if layer is not None else file_widget.filePath()

    def values(self) -> dict:
        """The parameters of :func:`bridge.align` (without the python)."""
        output = self.output.filePath()
        return {
            "target": self._path(self.target, self.target_file),
            "reference": self._path(self.reference, self.reference_file),
            "output": output,
            "matcher": self.matcher.currentText(),
            "model": self.model.currentText(),
            "gcp_layer": output.rsplit(".", 1)[0] + "_gcps.gpkg" if self.add_gcps.isChecked() and output else None,
        }


class InstallDialog(QDialog):
    """How to install the core: torch's build, and an offline folder of wheels or another package index.

    Args:
        env_dir: where the environment goes (shown).
        installed: the version of the core there now, if any.
        parent: the parent window.
    """

    def __init__(self, env_dir: Path, installed: str | None, parent=None) -> None:
        super().__init__(parent)
        self.env_dir = env_dir
        self.setWindowTitle("georef: Install the georef core")
        form = QFormLayout(self)
        state = f"version {installed} is installed; installing again repairs or upgrades it" if installed \
            else "not installed yet"
        form.addRow(QLabel(f"Environment: {env_dir}\n({state})", self))
        self.torch_build = QComboBox(self)
        self.torch_build.addItem("CPU (any computer)", "cpu")
        self.torch_build.addItem("GPU (NVIDIA CUDA, Linux)", "gpu")
        self.wheel_folder = QgsFileWidget(self)
        self.wheel_folder.setStorageMode(QgsFileWidget.GetDirectory)
        self.index_url = QLineEdit(self)
        self.index_url.setPlaceholderText("pip's configured index (PyPI)")
        self.base_python = QgsFileWidget(self)
        form.addRow("torch build", self.torch_build)
        form.addRow("Offline: folder of wheels", self.wheel_folder)
        form.addRow("... or package index URL", self.index_url)
        form.addRow("Python 3.11+ (found if empty)", self.base_python)
        buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel, self)
        buttons.button(QDialogButtonBox.Ok).setText("Install")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def options(self) -> InstallOptions:
        return InstallOptions(self.env_dir, torch_build=self.torch_build.currentData(),
                              wheel_folder=self.wheel_folder.filePath() or None,
                              index_url=self.index_url.text().strip() or None,
                              base_python=self.base_python.filePath() or None)
