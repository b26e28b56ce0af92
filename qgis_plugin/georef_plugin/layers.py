"""Adding results to the project: the aligned raster and a GCP layer styled by residual."""

from __future__ import annotations

from pathlib import Path

from qgis.core import (
    QgsClassificationQuantile,
    QgsGraduatedSymbolRenderer,
    QgsProject,
    QgsRasterLayer,
    QgsStyle,
    QgsVectorLayer,
)


def add_results(output: str, gcps: str | None, project: QgsProject | None = None) -> list:
    """Add the aligned raster and, if given, the GCP layer; return the layers added."""
    project = project or QgsProject.instance()
    layers = []
    raster = QgsRasterLayer(output, Path(output).stem)
    if not raster.isValid():
        raise RuntimeError(f"{output}: QGIS cannot open the aligned raster")
    layers.append(raster)
    if gcps:
        vector = QgsVectorLayer(f"{gcps}|layername=gcps", f"{Path(output).stem} GCPs", "ogr")
        if not vector.isValid():
            raise RuntimeError(f"{gcps}: QGIS cannot open the GCP layer")
        style_by_residual(vector)
        layers.append(vector)
    for layer in layers:
        project.addMapLayer(layer)
    return layers


def style_by_residual(layer: QgsVectorLayer, field: str = "res_px") -> None:
    """Graduated colours by residual size, 5 quantile classes, green to red."""
    ramp = QgsStyle.defaultStyle().colorRamp("RdYlGn")
    ramp.invert()
    renderer = QgsGraduatedSymbolRenderer(field)
    renderer.setSourceColorRamp(ramp)
    renderer.setClassificationMethod(QgsClassificationQuantile())
    renderer.updateClasses(layer, 5)
    layer.setRenderer(renderer)
