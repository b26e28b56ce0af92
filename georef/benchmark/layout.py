"""Where a benchmark run keeps each case's output and report, and how its settings are named."""

from __future__ import annotations

from pathlib import Path

#: Other tools the benchmark can run beside georef (see :mod:`georef.benchmark.peers`).
PEERS = ("arosics",)


def row_key(matcher: str, model: str, threshold: str, group: str) -> str:
    """The summary key of a setting and group, e.g. ``xfeat/auto/2 winter->summer``."""
    return f"{matcher}/{model}/{threshold} {group}"


def setting_key(row: dict) -> str:
    """The setting of a ``cases.csv`` row, ``matcher/model/threshold``: :func:`row_key` without its group."""
    return f"{row['matcher']}/{row['model']}/{row['threshold']}"


def case_paths(out_dir: Path, matcher: str, model: str, threshold: float, case_name: str) -> tuple[Path, Path]:
    """The output GeoTIFF and the JSON report (with its tie points) of a case under one setting."""
    folder = f"{matcher}_{model}_{threshold:g}"
    stem = "".join(ch if ch.isalnum() else "_" for ch in case_name)
    return out_dir / "outputs" / folder / f"{stem}.tif", out_dir / "reports" / folder / f"{stem}.json"
