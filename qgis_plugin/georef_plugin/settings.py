"""The plugin's stored settings, and where it installs the core."""

from __future__ import annotations

from pathlib import Path

from qgis.core import QgsApplication, QgsSettings

from . import bridge
from .installer import env_python


def core_env_dir() -> Path:
    """Where the plugin installs the core: ``georef/core`` in the QGIS profile folder."""
    return Path(QgsApplication.qgisSettingsDirPath()) / "georef" / "core"


def configured_python() -> str | None:
    """The georef core's Python: the one chosen in the settings, else the plugin's own install, if any."""
    chosen = QgsSettings().value(bridge.SETTINGS_KEY, None)
    if chosen:
        return chosen
    installed = env_python(core_env_dir())
    return str(installed) if installed.is_file() else None


def set_python(path: str | None) -> None:
    """Record the core's Python (None forgets it)."""
    if path:
        QgsSettings().setValue(bridge.SETTINGS_KEY, path)
    else:
        QgsSettings().remove(bridge.SETTINGS_KEY)
