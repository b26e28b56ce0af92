"""The alignment report: JSON for machines, a few lines for people."""

from __future__ import annotations

import functools
import html
import json
import platform
import re
from importlib import metadata
from pathlib import Path

import numpy as np

from georef.files import Staging, destination
from georef.gcps import from_alignment
from georef.result import Alignment

_PACKAGES = ("autogeoref", "numpy", "rasterio", "torch", "kornia", "opencv-python-headless", "pyproj")


def package_versions() -> dict[str, str]:
    return dict(_package_versions())


@functools.lru_cache(maxsize=1)
def _package_versions() -> dict[str, str]:  # reading package metadata costs ~20 ms a report
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


def report_dict(alignment: Alignment, output: str | Path | None = None, timings: dict | None = None) -> dict:
    """The report as a JSON-ready dict; ``alignment`` holds the full result."""
    q, accuracy = alignment.quality, alignment.accuracy
    return {
        "status": "passed" if q.passed else "failed",
        "output": None if output is None else str(output),
        "matcher": alignment.matcher,
        "model": alignment.model,
        "estimated_ce90_m": None if accuracy is None else accuracy.ce90_m,
        "estimated_ce90_px": None if accuracy is None else accuracy.ce90_px,
        "matches": q.matches,
        "inliers": q.inliers,
        "support": q.support,
        "log_nfa": q.log_nfa,
        "window_log_nfa": q.window_log_nfa,
        "tie_point_rmse_px": q.rmse_px,
        "tie_point_max_px": q.max_px,
        "tie_point_rmse_m": q.rmse_m,
        "tie_point_max_m": q.max_m,
        "coverage": q.coverage,
        "span": q.span,
        "repeat": q.repeat,
        "repeat_m": q.repeat_m,
        "shift_m": q.shift_m,
        "scale_change": q.scale_change,
        "search": None if alignment.search is None else alignment.search.to_dict(),
        "reasons": q.reasons,
        "timings_s": {**alignment.timings, **(timings or {})},
        "versions": package_versions(),
        "alignment": alignment.to_dict(),
    }


def report_paths(path: str | Path, figures: bool = True) -> list[Path]:
    """Every file :func:`write_report` writes: the JSON, and with ``figures`` two summaries and two plots."""
    path = Path(path)
    if not figures:
        return [path]
    stem = path.with_suffix("")  # not with_suffix on the stem: "a.2024.json" must not give "a.md"
    return [path, Path(f"{stem}.md"), Path(f"{stem}.html"), Path(f"{stem}_residuals.png"),
            Path(f"{stem}_histogram.png")]


def write_report(path: str | Path, alignment: Alignment, output: str | Path | None = None,
                 figures: bool = True, staging: Staging | None = None, timings: dict | None = None) -> Path:
    """Write the JSON report and, with ``figures``, the other files of :func:`report_paths`.

    Args:
        path: the JSON file.
        alignment: the result.
        output: the raster written with it, if any.
        figures: also write a Markdown and an HTML summary, a residual vector plot and a residual histogram.
        staging: renames the files with the command's other outputs; default each at once.
        timings: seconds of stages after the estimate (writing), added to the alignment's.
    """
    paths = report_paths(path, figures)
    data = report_dict(alignment, output, timings)
    with destination(paths[0], staging) as tmp:
        tmp.write_text(report_json(data))
    if figures:
        _, md, page, residuals, histogram = paths
        _plot_residuals(alignment, residuals, staging)
        _plot_histogram(alignment, histogram, staging)
        markdown = _markdown(data, alignment, [residuals.name, histogram.name])
        for file, text in ((md, markdown), (page, _html(markdown))):
            with destination(file, staging) as tmp:
                tmp.write_text(text)
    return paths[0]


#: Lists longer than this (tie points, residuals) are written on one line each.
_LONG_LIST = 16


def report_json(data: dict) -> str:
    """The report as JSON: indented, but each long list on one line.

    Readable where people read (the keys), compact where they do not (thousands of tie
    points), and several times faster to write: long lists go through json's C encoder.
    """
    long_lists: list[str] = []

    def shelve(value):
        if isinstance(value, dict):
            return {k: shelve(v) for k, v in value.items()}
        if isinstance(value, list) and len(value) > _LONG_LIST:
            long_lists.append(json.dumps(value))
            return f"\0{len(long_lists) - 1}"
        if isinstance(value, list):
            return [shelve(v) for v in value]
        return value

    text = json.dumps(shelve(data), indent=1)
    return re.sub(r'"\\u0000(\d+)"', lambda m: long_lists[int(m[1])], text)


def write_failure_report(path: str | Path, target: str | Path, reference: str | Path | None, reason: str,
                         staging: Staging | None = None) -> Path:
    """The JSON report of a run that produced no alignment at all (nothing matched)."""
    data = {"status": "failed", "output": None, "target": str(target),
            "reference": None if reference is None else str(reference), "reasons": [reason],
            "versions": package_versions(), "alignment": None}
    with destination(path, staging) as tmp:
        tmp.write_text(report_json(data))
    return Path(path)


def pyplot():
    """matplotlib's pyplot on the file-only Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _plot_residuals(alignment: Alignment, path: Path, staging: Staging | None) -> Path:
    """Residual vectors of the tie points over the target, inliers coloured by length."""
    plt = pyplot()
    table = from_alignment(alignment)
    inl = table.inlier
    fig, ax = plt.subplots(figsize=(6, 6 * alignment.height / max(alignment.width, 1) + 0.6), dpi=110)
    length = np.linalg.norm(table.residual_px, axis=1)
    ax.scatter(*table.pixel[~inl].T, s=4, c="0.7", label="outliers")
    q = ax.quiver(*table.pixel[inl].T, *table.residual_px[inl].T, length[inl], angles="xy", cmap="viridis",
                  scale_units="xy", scale=1 / 40)
    fig.colorbar(q, ax=ax, shrink=0.7, label="residual, px (arrows drawn 40x)")
    ax.set(xlim=(0, alignment.width), ylim=(alignment.height, 0), aspect="equal", xlabel="column", ylabel="row",
           title=f"{alignment.matcher}/{alignment.model}: residuals of {int(inl.sum())} inliers")
    ax.legend(loc="lower right", fontsize=7)
    with destination(path, staging) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path


def _plot_histogram(alignment: Alignment, path: Path, staging: Staging | None) -> Path:
    plt = pyplot()
    tp = alignment.tie_points
    fig, ax = plt.subplots(figsize=(5, 3), dpi=110)
    ax.hist(tp.residual_px[tp.inlier], bins=40, color="C0")
    ax.set(xlabel="tie-point residual of the inliers, px", ylabel="tie points",
           title=f"tie-point RMSE {alignment.quality.rmse_px:.2f} px")
    fig.tight_layout()
    with destination(path, staging) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path


def _markdown(data: dict, alignment: Alignment, images: list[str]) -> str:
    q = alignment.quality
    lines = [
        f"# georef report: {Path(alignment.target).name}",
        "",
        f"- status: **{data['status']}**" + (f" ({'; '.join(q.reasons)})" if q.reasons else ""),
        f"- reference: `{alignment.reference}`; output: `{data['output']}`",
        f"- matcher / model: {alignment.matcher} / {alignment.model}",
        f"- matches {q.matches}, inliers {q.inliers} ({q.support} unguided), coverage {q.coverage:.0%}",
        f"- estimated error at the corners (CE90): {_accuracy_text(alignment)}",
        f"- tie-point residuals: RMSE {q.rmse_px:.2f} px ({q.rmse_m:.1f} m), max {q.max_px:.2f} px ({q.max_m:.1f} m)",
        "- time: " + ", ".join(f"{k} {v:.2f} s" for k, v in alignment.timings.items()),
        "",
    ]
    if alignment.model_comparison:
        lines += ["## Models, held-out residuals (5-fold)", "", "| model | RMSE px | CE90 px | max px |",
                  "| --- | --- | --- | --- |"]
        lines += [f"| {name} | {m['rmse_px']:.2f} | {m['ce90_px']:.2f} | {m['max_px']:.2f} |"
                  for name, m in alignment.model_comparison.items()]
        lines.append("")
    lines += [f"![{name}]({name})" for name in images]
    return "\n".join(lines) + "\n"


def _html(markdown: str) -> str:
    """A small self-contained HTML page of the Markdown summary (headings, lists, tables, images)."""
    body = []
    table: list[str] = []
    for line in markdown.splitlines() + [""]:
        if line.startswith("|"):
            if not set(line) <= set("|- "):
                table.append("<tr>" + "".join(f"<td>{html.escape(c.strip())}</td>" for c in line.strip("|").split("|")) + "</tr>")
            continue
        if table:
            body.append("<table border='1' cellpadding='3'>" + "".join(table) + "</table>")
            table = []
        if line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            body.append(f"<h{level}>{html.escape(line.lstrip('# '))}</h{level}>")
        elif line.startswith("- "):
            text = html.escape(line[2:])
            body.append("<li>" + re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", text) + "</li>")
        elif line.startswith("!["):
            src = line[line.index("(") + 1 : -1]
            body.append(f"<p><img src='{html.escape(src)}'></p>")
    return "<!doctype html><meta charset='utf-8'><title>georef report</title>\n" + "\n".join(body) + "\n"


def _accuracy_text(alignment: Alignment) -> str:
    a = alignment.accuracy
    if a is None:
        return "unknown (too few measurements to estimate it)"
    return f"{a.ce90_px:.2f} px ({a.ce90_m:.1f} m), from {a.measurements} {a.source}"


def summary(alignment: Alignment) -> str:
    """A short human summary of the result."""
    q = alignment.quality
    verdict = "passed" if q.passed else "FAILED: " + "; ".join(q.reasons)
    total = sum(alignment.timings.values())
    a = alignment.accuracy
    accuracy = "unknown" if a is None else f"{a.ce90_px:.2f} px ({a.ce90_m:.1f} m)"
    if alignment.path == "correlation":
        evidence = f"correlation, {q.inliers} of {q.matches} windows agree"
    else:
        evidence = f"{q.matches} matches, {q.inliers} inliers ({q.support} unguided)"
    method = "correlation" if alignment.path == "correlation" else alignment.matcher
    return (
        f"{method}/{alignment.model}: estimated error {accuracy} (CE90 at the corners); {evidence}, "
        f"moved {q.shift_m:.0f} m, tie-point RMSE {q.rmse_px:.2f} px, {total:.2f} s; quality gate {verdict}"
    )
