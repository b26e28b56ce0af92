"""Running cases through matchers and writing per-case rows and summaries."""

from __future__ import annotations

import csv
import json
import logging
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import rasterio
from tqdm import tqdm

from georef import geometry
from georef.align import AlignOptions, align_file
from georef.benchmark.cases import Case
from georef.benchmark.metrics import check_point_rmse, corner_error, summarise
from georef.errors import MatchingError, QualityGateFailed
from georef.matchers import create_matcher

log = logging.getLogger(__name__)

FIELDS = [
    "case", "matcher", "model", "status", "error_px", "error_m", "checkpoint_rmse_px",
    "matches", "inliers", "inlier_ratio", "rmse_px", "coverage", "accepted",
    "read_s", "match_s", "fit_s", "write_s", "total_s",
]


def run_case(case: Case, options: AlignOptions, workdir: Path) -> dict:
    """Align one case through :func:`georef.align.align_file` and score the written output."""
    out = workdir / "outputs" / options.matcher / f"{case.name.replace('/', '_').replace(':', '_')}.tif"
    row = {"case": case.name, "matcher": options.matcher, "model": options.model}
    start = time.perf_counter()
    try:
        alignment = align_file(case.target, case.reference, out, options, overwrite=True)
        with rasterio.open(out) as ds:  # score what was written, not what was meant
            estimate = geometry.to_matrix(ds.transform)
        status = "ok"
    except QualityGateFailed as exc:
        alignment, status = exc.alignment, "refused"
        estimate = alignment.geotransform
    except MatchingError:
        total = time.perf_counter() - start
        return {**row, "status": "no-fit", "error_px": float("nan"), "error_m": float("nan"),
                "checkpoint_rmse_px": float("nan"), "matches": 0, "inliers": 0, "inlier_ratio": 0.0,
                "accepted": False, "total_s": total}
    total = time.perf_counter() - start
    err_m = corner_error(estimate, case.truth, case.width, case.height)
    q = alignment.quality
    t = alignment.timings
    return {
        **row,
        "status": status,
        "error_px": err_m / case.metres_per_px,
        "error_m": err_m,
        "checkpoint_rmse_px": check_point_rmse(estimate, case.truth, case.width, case.height, case.valid)
        / case.metres_per_px,
        "matches": q.matches,
        "inliers": q.inliers,
        "inlier_ratio": q.inliers / max(q.matches, 1),
        "rmse_px": q.rmse_px,
        "coverage": q.coverage,
        "accepted": q.passed,
        "read_s": t.get("read"), "match_s": t.get("match"), "fit_s": t.get("fit"), "write_s": t.get("write"),
        "total_s": total,
    }


def run_benchmark(
    cases: list[Case],
    matchers: list[str],
    out_dir: str | Path,
    options: AlignOptions | None = None,
    progress: bool = True,
) -> dict:
    """Run every case through every matcher; write ``cases.csv`` and ``summary.json``.

    Rows already in ``cases.csv`` are kept and not run again, so an interrupted run resumes.

    Returns:
        The summary per matcher.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path = out_dir / "cases.csv"
    rows = _read_rows(csv_path)
    done = {(r["case"], r["matcher"], r["model"]) for r in rows}
    base = options or AlignOptions()
    new_file = not csv_path.exists()
    with open(csv_path, "a", newline="") as f:
        writer = csv.DictWriter(f, FIELDS, extrasaction="ignore")
        if new_file:
            writer.writeheader()
        for matcher in matchers:
            opts = replace(base, matcher=matcher)
            create_matcher(matcher, opts.weights)  # load weights before timing
            todo = [c for c in cases if (c.name, matcher, opts.model) not in done]
            for case in tqdm(todo, desc=matcher, disable=not progress, unit="pair"):
                row = run_case(case, opts, out_dir)
                writer.writerow(row)
                f.flush()
                rows.append(row)
    summary = {}
    for matcher in matchers:
        mine = [r for r in rows if r["matcher"] == matcher and r["model"] == base.model]
        summary[matcher] = summarise(
            np.array([float(r["error_px"]) for r in mine]),
            np.array([str(r["accepted"]) == "True" for r in mine]),
            np.array([float(r["total_s"]) for r in mine]),
        )
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


def _read_rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))
