"""QGIS plugin entry point; everything heavy is imported only when QGIS loads the plugin."""


def classFactory(iface):  # noqa: N802 - name fixed by QGIS
    from .plugin import GeorefPlugin

    return GeorefPlugin(iface)
