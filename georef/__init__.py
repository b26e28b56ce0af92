"""georef: automatic georeferencing of satellite scenes against a reference.

The public API::

    from georef import AlignOptions, OutputOptions, align_file

    alignment = align_file("winter.tif", "summer.tif", OutputOptions(output="aligned.tif"))
    print(alignment.quality.rmse_m)

- :func:`estimate_alignment` matches and fits, and returns an :class:`Alignment`
  (transform, tie points, residuals, quality) without writing anything;
- :func:`align_file` estimates, applies the quality gate and writes the outputs;
- :func:`write_outputs` applies an :class:`Alignment` to a target;
- :func:`fit_file` applies GCPs (edited in a GIS) to a target;
- :class:`AlignOptions`, :class:`OutputOptions`: every setting, with its default;
- :class:`GeorefError`: the root of every error georef raises.

Names are imported on first use, so ``import georef`` stays cheap.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version

#: The distribution's name on PyPI: ``georef`` there is an unrelated project.
DISTRIBUTION = "autogeoref"

try:
    __version__ = version(DISTRIBUTION)
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"

_PUBLIC = {
    "align_file": "georef.workflow",
    "fit_file": "georef.workflow",
    "write_outputs": "georef.workflow",
    "estimate_alignment": "georef.pipeline",
    "Alignment": "georef.result",
    "AlignOptions": "georef.options",
    "OutputOptions": "georef.options",
    "QualityGate": "georef.options",
    "GeorefError": "georef.errors",
}

__all__ = [*_PUBLIC, "__version__"]


def __getattr__(name: str):
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'georef' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
