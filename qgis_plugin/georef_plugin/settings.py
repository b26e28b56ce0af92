"""The plugin's stored settings."""

from __future__ import annotations

from qgis.core import QgsSettings

from . import bridge


def configured_python() -> str | None:
    """The georef core's Python chosen in the settings, if any."""
    return QgsSettings().value(bridge.SETTINGS_KEY, None) or None


def set_python(path: str) -> None:
    QgsSettings().setValue(bridge.SETTINGS_KEY, path)
