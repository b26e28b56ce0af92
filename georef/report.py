"""The alignment report: JSON for machines, a few lines for people."""

from __future__ import annotations

import json
import platform
from importlib import metadata
from pathlib import Path

from georef.align import Alignment

_PACKAGES = ("georef", "numpy", "rasterio", "torch", "kornia", "opencv-python-headless", "pyproj")


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    try:
        import rasterio

        versions["gdal"] = rasterio.__gdal_version__
    except ImportError:  # pragma: no cover - rasterio is a dependency
        pass
    return versions


def report_dict(alignment: Alignment, output: str | Path | None = None) -> dict:
    """The report as a JSON-ready dict; ``alignment`` holds the full result."""
    q = alignment.quality
    return {
        "status": "passed" if q.passed else "failed",
        "output": None if output is None else str(output),
        "matcher": alignment.matcher,
        "model": alignment.model,
        "matches": q.matches,
        "inliers": q.inliers,
        "support": q.support,
        "rmse_px": q.rmse_px,
        "max_px": q.max_px,
        "rmse_m": q.rmse_m,
        "max_m": q.max_m,
        "coverage": q.coverage,
        "shift_m": q.shift_m,
        "scale_change": q.scale_change,
        "reasons": q.reasons,
        "timings_s": alignment.timings,
        "versions": package_versions(),
        "alignment": alignment.to_dict(),
    }


def write_report(path: str | Path, alignment: Alignment, output: str | Path | None = None) -> Path:
    """Write the JSON report atomically."""
    from georef.write import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(report_dict(alignment, output), indent=1))
    return Path(path)


def summary(alignment: Alignment) -> str:
    """A short human summary of the result."""
    q = alignment.quality
    verdict = "passed" if q.passed else "FAILED: " + "; ".join(q.reasons)
    total = sum(alignment.timings.values())
    return (
        f"{alignment.matcher}/{alignment.model}: {q.matches} matches, {q.inliers} inliers "
        f"({q.support} unguided), moved {q.shift_m:.0f} m, "
        f"RMSE {q.rmse_px:.2f} px ({q.rmse_m:.1f} m), max {q.max_px:.2f} px, "
        f"coverage {q.coverage:.0%}, {total:.2f} s; quality gate {verdict}"
    )
