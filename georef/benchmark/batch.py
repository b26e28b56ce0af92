"""Batch benchmark: the same pairs aligned one after another in one process, as a shell loop of
``georef align`` calls, and by ``georef batch`` on 1 and 2 workers.

The pairs are the benchmark's warp cases (s2-seasons subtiles, both season pairs).
Every way writes the same GeoTIFF outputs; times are wall-clock, start-up included
(the shell loop's per-call start-up and model load is what a batch removes). Each
way's time is also split as a cost model, T(n) = fixed + n x steady: *steady* is the
time between finished pairs once pairs flow (from the first finished pair to the
last), *fixed* the rest (a batch's cluster start, each worker's imports and model
load, its summary files).
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
import time
from pathlib import Path

from georef.progress import Reporter

log = logging.getLogger(__name__)


class _Clock(Reporter):
    """When each pair finished (the batch's ``pairs`` stage)."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def advance(self, stage: str, done: int, total: int) -> None:
        self.times.append(time.perf_counter())


def _split(seconds: float, finished: list[float]) -> dict:
    """``seconds`` of a way split into the steady time per pair and the fixed rest (see the module)."""
    steady = (finished[-1] - finished[0]) / (len(finished) - 1) if len(finished) > 1 else seconds
    return {"steady_s_per_pair": steady, "fixed_s": seconds - steady * len(finished)}


def _in_process(cases, out_dir: Path, one_core: bool) -> tuple[float, dict]:
    """The pairs one after another in this process, writing what a batch task writes (output and JSON
    report): on every core (the defaults), or with a worker's settings."""
    import os

    from georef import threads
    from georef.batch.engine import use_one_thread
    from georef.errors import GeorefError
    from georef.options import OutputOptions
    from georef.workflow import align_file

    gdal_threads = os.environ.get("GDAL_NUM_THREADS")
    if one_core:
        use_one_thread()
    start, finished = time.perf_counter(), []
    try:
        for i, case in enumerate(cases):
            try:
                align_file(case.target, case.reference, OutputOptions(
                    output=out_dir / f"{i}.tif", report=out_dir / f"{i}.json", overwrite=True, report_figures=False))
            except GeorefError:
                pass
            finished.append(time.perf_counter())
    finally:
        threads.request(None)
        if gdal_threads is None:
            os.environ.pop("GDAL_NUM_THREADS", None)
    seconds = time.perf_counter() - start
    return seconds, _split(seconds, finished)


def _shell_loop(cases, out_dir: Path) -> tuple[float, dict]:
    georef = Path(sys.executable).parent / "georef"
    start, finished = time.perf_counter(), []
    for i, case in enumerate(cases):
        subprocess.run([str(georef), "-q", "align", str(case.target), "--ref", str(case.reference), "-o",
                        str(out_dir / f"{i}.tif"), "--overwrite"], capture_output=True, check=False)
        finished.append(time.perf_counter())
    seconds = time.perf_counter() - start
    return seconds, _split(seconds, finished)


def _batch(cases, out_dir: Path, workers: int) -> tuple[float, dict]:
    from georef.batch import Pair, engine
    from georef.options import OutputOptions

    pairs = [Pair(str(c.target), str(c.reference)) for c in cases]
    clock = _Clock()
    start = time.perf_counter()
    client = engine.start_client(workers)
    try:
        table = engine.run(pairs, out_dir, outputs=OutputOptions(report_figures=False, overwrite=True), client=client,
                           reporter=clock)
    finally:
        engine.stop_client(client)
    seconds = time.perf_counter() - start
    return seconds, {**_split(seconds, clock.times), "worker_peak_rss_mb": float(table["peak_rss_mb"].max())}


def run_batch_benchmark(data: str | Path, out_dir: str | Path, pairs: int = 60, shell_pairs: int = 12) -> dict:
    """Time the ways of aligning ``pairs`` pairs; write ``batch.json`` and ``batch.md``.

    Args:
        data: the s2-seasons folder.
        out_dir: work folder (cases cached, outputs replaced).
        pairs: pairs aligned by each way (winter and summer_prev against summer).
        shell_pairs: pairs of the shell loop (each call pays the start-up: fewer suffice).
    """
    from georef.benchmark.cases import CaseSpec, build_cases

    out_dir = Path(out_dir)
    spec = CaseSpec(seasons=(("winter", "summer"), ("summer_prev", "summer")))
    cases = build_cases(Path(data), out_dir / "cases", spec)
    cases = cases[:pairs]
    runs = {}
    for name, work in (
        ("in-process, every core", lambda d: _in_process(cases, d, one_core=False)),
        ("in-process, one core", lambda d: _in_process(cases, d, one_core=True)),
        ("batch, 1 worker", lambda d: _batch(cases, d, 1)),
        ("batch, 2 workers", lambda d: _batch(cases, d, 2)),
        ("shell loop of georef align", lambda d: _shell_loop(cases[:shell_pairs], d)),
    ):
        folder = out_dir / "runs" / name.replace(" ", "_").replace(",", "")
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        log.info("batch benchmark: %s", name)
        seconds, details = work(folder)
        n = shell_pairs if name.startswith("shell") else len(cases)
        runs[name] = {"pairs": n, "seconds": seconds, "s_per_pair": seconds / n, "pairs_per_min": 60 * n / seconds,
                      "worker_peak_rss_mb": None, **details}
    two = runs["batch, 2 workers"]["s_per_pair"]
    summary = {"pairs": len(cases), "runs": runs,
               "speedup_vs_in_process": runs["in-process, every core"]["s_per_pair"] / two,
               "one_worker_vs_one_core": runs["batch, 1 worker"]["s_per_pair"] / runs["in-process, one core"]["s_per_pair"],
               "speedup_vs_shell_loop": runs["shell loop of georef align"]["s_per_pair"] / two,
               "scaling_1_to_2_workers": runs["batch, 1 worker"]["s_per_pair"] / two,
               "steady_speedup_vs_in_process": runs["in-process, every core"]["steady_s_per_pair"]
               / runs["batch, 2 workers"]["steady_s_per_pair"]}
    (out_dir / "batch.json").write_text(json.dumps(summary, indent=1))
    lines = [f"# Batch benchmark ({len(cases)} pairs, 2 cores)", "",
             "| way | pairs | s/pair | pairs/min | steady s/pair | fixed s | peak RSS per worker |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for name, r in runs.items():
        rss = f"{r['worker_peak_rss_mb']:.0f} MB" if r["worker_peak_rss_mb"] else ""
        lines.append(f"| {name} | {r['pairs']} | {r['s_per_pair']:.2f} | {r['pairs_per_min']:.0f} | "
                     f"{r['steady_s_per_pair']:.2f} | {r['fixed_s']:.1f} | {rss} |")
    lines += ["", f"batch on 2 workers: {summary['speedup_vs_in_process']:.2f}x the in-process loop, "
              f"{summary['speedup_vs_shell_loop']:.1f}x the shell loop; 1 -> 2 workers "
              f"{summary['scaling_1_to_2_workers']:.2f}x; 1 worker takes {summary['one_worker_vs_one_core']:.2f}x "
              "the time of the loop on one core (the engine's overhead, start-up included). Once pairs flow, 2 "
              f"workers take {summary['steady_speedup_vs_in_process']:.2f}x the in-process loop's throughput "
              "(steady s/pair)."]
    (out_dir / "batch.md").write_text("\n".join(lines) + "\n")
    return summary


__all__ = ["run_batch_benchmark"]
