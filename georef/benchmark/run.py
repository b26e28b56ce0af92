"""Running cases through matchers and models, and writing per-case rows and summaries."""

from __future__ import annotations

import csv
import json
import logging
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import rasterio
from rasterio.warp import transform as transform_coords
from tqdm import tqdm

from georef import geometry
from georef.benchmark.cases import Case, CaseSpec, build_cases
from georef.benchmark.layout import case_paths, row_key
from georef.benchmark.metrics import Projection, has_error, no_fit_error, score, summarise_rows
from georef.benchmark.peers import AROSICS_SETTING, run_arosics
from georef.benchmark.report import write_report
from georef.errors import MatchingError, QualityGateFailed
from georef.matchers import create_matcher
from georef.options import AlignOptions, OutputOptions
from georef.workflow import align_file

log = logging.getLogger(__name__)

FIELDS = [
    "case", "group", "matcher", "model", "threshold", "status", "error_px", "error_m", "checkpoint_rmse_px",
    "estimated_ce90_px", "matches", "inliers", "support", "inlier_ratio", "rmse_px", "coverage", "log_nfa",
    "window_log_nfa", "accepted", "reasons", "read_s", "match_s", "fit_s", "refine_s", "write_s", "total_s",
    "estimate", "chosen_model", "path",
]


@dataclass(frozen=True)
class Setting:
    """One configuration under test."""

    matcher: str
    model: str
    threshold: float

    @property
    def key(self) -> tuple[str, str, str]:
        return self.matcher, self.model, f"{self.threshold:g}"


def _into_truth_crs(crs, case: Case) -> Projection:
    """Where an output lands in another CRS than the case's truth (a CSV truth is in the reference's CRS,
    while the output keeps the target's), the map from the first to the second."""
    truth_crs = case.truth_crs
    if truth_crs is None or crs == truth_crs:
        return None
    return lambda points: np.column_stack(transform_coords(crs, truth_crs, points[:, 0], points[:, 1]))


def run_case(case: Case, options: AlignOptions, out_dir: Path) -> dict:
    """Align one case through :func:`georef.workflow.align_file` and score the written output.

    The output GeoTIFF and the JSON report land under ``out_dir``; a refused case is
    scored on the transform it would have written.
    """
    out, report = case_paths(out_dir, options.matcher, options.model, options.threshold_px, case.name)
    row = {"case": case.name, "group": case.group, "matcher": options.matcher, "model": options.model,
           "threshold": f"{options.threshold_px:g}"}
    start, status = time.perf_counter(), "ok"
    try:
        alignment = align_file(case.target, case.reference,
                               OutputOptions(output=out, report=report, overwrite=True, report_figures=False), options)
    except QualityGateFailed as exc:
        alignment, status = exc.alignment, "refused"
    except MatchingError:
        return {**row, "status": "no-fit", "error_px": no_fit_error(case),
                "matches": 0, "inliers": 0, "support": 0, "inlier_ratio": 0.0, "accepted": False,
                "total_s": time.perf_counter() - start}
    total = time.perf_counter() - start  # the tool's time, not the scoring's
    if status == "ok":
        with rasterio.open(out) as ds:  # score what was written, not what was meant
            estimate, crs = geometry.to_matrix(ds.transform), ds.crs
    else:
        estimate, crs = alignment.geotransform, alignment.crs
    q, t = alignment.quality, alignment.timings
    return {
        **row, **score(case, estimate, _into_truth_crs(crs, case)),
        "status": status,
        "matches": q.matches,
        "inliers": q.inliers,
        "support": q.support,
        "inlier_ratio": q.inliers / max(q.matches, 1),
        "rmse_px": q.rmse_px,
        "coverage": q.coverage,
        "log_nfa": q.log_nfa,
        "window_log_nfa": "" if q.window_log_nfa is None else q.window_log_nfa,
        "estimated_ce90_px": "" if alignment.accuracy is None else alignment.accuracy.ce90_px,
        "accepted": q.passed,
        "reasons": "; ".join(q.reasons),
        "chosen_model": alignment.model,
        "path": alignment.path,
        **{f"{stage}_s": t.get(stage) for stage in ("read", "match", "fit", "refine", "write")},
        "total_s": total,
    }


def run_benchmark(
    cases: list[Case],
    matchers: list[str],
    out_dir: str | Path,
    models: list[str] = ("auto",),
    thresholds: list[float] = (),
    options: AlignOptions | None = None,
    progress: bool | None = None,
    peers: list[str] = (),
) -> dict:
    """Run every case through every matcher and model; optionally sweep the RANSAC threshold.

    Writes ``cases.csv`` (one row per case and setting) and ``summary.json``. Rows
    already in ``cases.csv`` are kept and not run again, so an interrupted run resumes.

    Args:
        cases: the cases.
        matchers, models: settings compared side by side, at the default threshold.
        out_dir: output folder.
        thresholds: extra RANSAC thresholds (px) run for every matcher with the first model.
        options: base alignment options.
        progress: show a progress bar [default: when stderr is a terminal].
        peers: other tools run on the same cases (see :mod:`georef.benchmark.peers`).

    Returns:
        The summary: ``{"settings": {"matcher/model/threshold group": {...}}}``, one
        entry per setting and group of cases (e.g. season pair).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    base = options or AlignOptions()
    settings = [Setting(m, model, base.threshold_px) for m in matchers for model in models]
    settings += [Setting(m, models[0], t) for m in matchers for t in thresholds if t != base.threshold_px]
    csv_path = out_dir / "cases.csv"
    rows = _read_rows(csv_path)
    if rows and list(rows[0]) != FIELDS:  # written by an older version: same rows, current columns
        _write_rows(csv_path, rows)
    done = {(r["case"], r["matcher"], r["model"], r["threshold"]) for r in rows}
    todo = [(s, c) for s in settings for c in cases if (c.name, *s.key) not in done]
    new_file = not csv_path.exists()
    with open(csv_path, "a", newline="") as f:
        writer = csv.DictWriter(f, FIELDS, extrasaction="ignore")
        if new_file:
            writer.writeheader()
        loaded = set()
        bar = progress if progress is not None else sys.stderr.isatty()
        if rows and todo:
            log.info("resuming: %d runs done, %d to go", len(done), len(todo))
        for setting, case in tqdm(todo, desc="benchmark", disable=not bar or not todo, unit="case"):
            if setting.matcher not in loaded:
                create_matcher(setting.matcher, base.weights)  # load weights before timing
                loaded.add(setting.matcher)
            opts = replace(base, matcher=setting.matcher, model=setting.model, threshold_px=setting.threshold)
            row = run_case(case, opts, out_dir)
            writer.writerow(row)
            f.flush()
            rows.append({k: str(v) for k, v in row.items()})
        if "arosics" in peers:
            setting = Setting(*AROSICS_SETTING)
            settings.append(setting)
            missing = [c for c in cases if (c.name, *setting.key) not in done]
            for row in run_arosics(missing, out_dir) if missing else []:
                writer.writerow(row)
                rows.append({k: str(v) for k, v in row.items()})
            f.flush()
    names = {c.name for c in cases}
    summary = {"settings": {}}
    for s, group in ((s, g) for s in settings for g in sorted({c.group for c in cases})):
        mine = [r for r in rows if (r["matcher"], r["model"], r["threshold"]) == s.key and r["case"] in names
                and r["group"] == group]
        scored = [r for r in mine if has_error(r)]
        entry = summarise_rows(scored)
        entry.update(
            matcher=s.matcher, model=s.model, threshold=s.threshold, group=group,
            cases_without_truth=len(mine) - len(scored),
            median_inliers=float(np.median([float(r.get("inliers") or 0) for r in mine])) if mine else 0.0,
            median_inlier_ratio=float(np.median([float(r.get("inlier_ratio") or 0) for r in mine])) if mine else 0.0,
            **_path_times(scored),
        )
        summary["settings"][row_key(s.matcher, s.model, s.key[2], group)] = entry
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


def _path_times(rows: list[dict]) -> dict:
    """Per path the alignment took (``correlation``, ``keypoints``): how many cases, and their median time."""
    out = {}
    for path in ("correlation", "keypoints"):
        seconds = [float(r["total_s"]) for r in rows if r.get("path") == path]
        out[f"{path}_cases"] = len(seconds)
        out[f"{path}_median_s"] = float(np.median(seconds)) if seconds else float("nan")
    return out


def _read_rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _write_rows(path: Path, rows: list[dict]) -> None:
    tmp = path.with_suffix(".part")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, FIELDS, restval="", extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(path)


def read_rows(out_dir: str | Path) -> list[dict]:
    """The rows of a benchmark folder's ``cases.csv``."""
    return _read_rows(Path(out_dir) / "cases.csv")


@dataclass(frozen=True)
class Settings:
    """What a benchmark runs on its cases, and how its report is headed.

    Attributes:
        matchers, models, thresholds: the settings compared (see :func:`run_benchmark`).
        options: alignment options of every case.
        peers: other tools run on the same cases (see :mod:`georef.benchmark.peers`).
        command: the command line, for the report.
        show: case names to draw in the report; None for the two worst and two best.
    """

    matchers: tuple[str, ...] = ("xfeat",)
    models: tuple[str, ...] = ("auto",)
    thresholds: tuple[float, ...] = ()
    options: AlignOptions = field(default_factory=AlignOptions)
    peers: tuple[str, ...] = ()
    command: str = ""
    show: tuple[str, ...] | None = None


def benchmark(pairs: str | Path, out_dir: str | Path, spec: CaseSpec | None = None,
              settings: Settings = Settings()) -> dict:
    """Build the cases, run them, and write ``cases.csv``, ``summary.json``, plots and ``report.md``."""
    out_dir = Path(out_dir)
    cases = build_cases(pairs, out_dir / "cases", spec or CaseSpec())
    return run_and_report(cases, out_dir, settings)[0]


def run_and_report(cases: list[Case], out_dir: Path, settings: Settings = Settings()) -> tuple[dict, list[dict]]:
    """:func:`run_benchmark`, then the report.

    Returns:
        The summary, and the rows it summarises: those of ``cases`` and of its settings with a true error (a
        resumed folder's ``cases.csv`` may hold others).
    """
    summary = run_benchmark(cases, settings.matchers, out_dir, settings.models, settings.thresholds, settings.options,
                            peers=settings.peers)
    rows = read_rows(out_dir)
    write_report(summary, rows, cases, out_dir, settings.command, settings.show, settings.options.threshold_px)
    names = {c.name for c in cases}
    return summary, [r for r in rows if r["case"] in names and has_error(r)
                     and row_key(r["matcher"], r["model"], r["threshold"], r["group"]) in summary["settings"]]
