"""Running a batch on Dask distributed: one task per pair, nothing lost, nothing twice.

The client submits one task per pair to a cluster: a ``LocalCluster`` of one
single-threaded worker process per core by default, or any running scheduler
(dask-jobqueue on SLURM or PBS, Kubernetes) by address. A worker keeps its
matcher between tasks (:func:`georef.matchers.create_matcher` caches it per
process). Each task writes its outputs atomically, as ``georef align`` does, and
returns one row; a pair that fails returns its row too, with the reason. The
client appends each row to ``results.csv`` as it arrives, so an interrupted run
loses no finished pair, and ``resume`` skips pairs already finished with the
same inputs and options. A worker that dies mid-task has its task run again
elsewhere (Dask reschedules it), and its temporary files are removed at the end.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import socket
import time
from collections.abc import Sequence
from pathlib import Path

from georef.allocator import MMAP_THRESHOLD, TRIM_THRESHOLD
from georef.batch import results
from georef.batch.pairs import Pair
from georef.copyfree import sidecar_path
from georef.errors import GeorefError, InvalidOption, OutputError, QualityGateFailed, one_line
from georef.files import check_destinations, remove_leftovers
from georef.options import AlignOptions, OutputOptions
from georef.progress import Reporter, Stages
from georef.raster import ExclusionMask

log = logging.getLogger(__name__)

#: Times Dask runs a task again after an exception in it (a worker's death is counted by Dask itself).
RETRIES = 2
#: Output formats of a batch: a GeoTIFF copy, or a VRT over the target (no pixel copied).
FORMATS = ("tif", "vrt")
#: Dask settings of the local cluster's workers that cost a pair time and serve only the dashboard (see
#: :func:`start_client`).
QUIET_WORKERS = {"distributed.worker.profile.enabled": False, "distributed.admin.tick.interval": "1000ms",
                 "distributed.worker.memory.monitor-interval": "1000ms",
                 "distributed.admin.system-monitor.interval": "5000ms"}


@dataclasses.dataclass(frozen=True)
class Job:
    """One pair as a task: where it writes, and the key that identifies its inputs and settings."""

    pair: Pair
    output: str
    report: str
    key: str


def start_client(workers: int | None = None, scheduler: str | None = None):
    """A Dask client: of a running scheduler (``tcp://host:8786``), or of a new local cluster.

    The local cluster has ``workers`` processes (default: one per core) of one thread each.
    """
    import dask
    from dask.distributed import Client, LocalCluster

    from georef.threads import available_cores

    if scheduler is not None:
        return Client(scheduler)
    # Dask starts workers with MALLOC_TRIM_THRESHOLD_=65536, which also fixes glibc's mmap threshold:
    # every large array is then mapped and unmapped afresh, and a pair takes twice as long (measured).
    # Without it, the workers inherit the command's own settings (georef.allocator).
    # Its statistical profiler (a stack sample every 10 ms) and its event loop's ticks (every 20 ms),
    # memory checks (100 ms) and system monitor (500 ms) each take the GIL from the task: together
    # 10-15 % of a pair on 2 cores (docs/benchmarks.md, Batches). A pair's memory grows over seconds:
    # a check a second still catches it.
    with dask.config.set({f"distributed.nanny.pre-spawn-environ.{TRIM_THRESHOLD}": None, **QUIET_WORKERS}):
        cluster = LocalCluster(n_workers=workers or available_cores(), threads_per_worker=1, processes=True,
                               dashboard_address=":0")
    return Client(cluster)


def stop_client(client) -> None:
    """Close a client of :func:`start_client`, and its local cluster if it started one."""
    client.close()
    if client.cluster is not None:
        client.cluster.close()


def _unexpected(exc: BaseException) -> str:
    """The reason recorded for a pair that failed by a bug or a lost worker."""
    return f"{type(exc).__name__}: {one_line(exc, 300)}"


def _stat(path: str) -> list:
    """Identity of an input file for ``resume``: size and modification time (each band of a list)."""
    out = []
    for part in path.split(","):
        try:
            st = os.stat(part)
            out.append([part, st.st_size, st.st_mtime_ns])
        except OSError:
            out.append([part])
    return out


def job_key(pair: Pair, output: str, options: AlignOptions, outputs: OutputOptions) -> str:
    """What makes a finished pair reusable: its inputs (paths, sizes, times), output and every setting."""
    settings = {k: v for k, v in dataclasses.asdict(outputs).items() if k not in ("output", "report", "overwrite")}
    identity = {"target": _stat(pair.target), "reference": _stat(pair.reference), "output": output,
                "options": dataclasses.asdict(pair_options(pair, options)), "outputs": settings,
                "masks": [_stat(ExclusionMask.split(m)[0]) for m in (pair.mask_target, pair.mask_ref) if m]}
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:20]


def pair_options(pair: Pair, options: AlignOptions) -> AlignOptions:
    """The batch's settings with the pair's own masks, where it has any."""
    return dataclasses.replace(options, mask_target=pair.mask_target or options.mask_target,
                               mask_ref=pair.mask_ref or options.mask_ref)


def plan_jobs(pairs: Sequence[Pair], out_dir: Path, options: AlignOptions, outputs: OutputOptions,
              output_format: str = "tif") -> list[Job]:
    """Where each pair writes: its own output, or ``OUT/aligned/<target name>.<format>``; its report beside
    the others in ``OUT/reports``.

    Raises:
        OutputError: two pairs would write one file.
    """
    jobs, names = [], set()
    for pair in pairs:
        first_target = pair.target.split(",")[0]
        stem = Path(first_target.rstrip("/")).name.split(".")[0] or "target"
        name, n = stem, 1
        while name in names:
            n += 1
            name = f"{stem}_{n}"
        names.add(name)
        if outputs.in_place:  # the sidecar beside the target is the output
            output = str(sidecar_path(first_target))
        else:
            suffix = Path(first_target).suffix if outputs.sidecar else f".{output_format}"
            output = pair.output or str(out_dir / "aligned" / f"{name}{suffix}")
        jobs.append(Job(pair, output, str(out_dir / "reports" / f"{name}.json"),
                        job_key(pair, output, options, outputs)))
    seen: dict[str, Pair] = {}
    for job in jobs:
        if job.output in seen:
            raise OutputError(f"is the output of two pairs ({seen[job.output].target} and {job.pair.target})",
                              job.output)
        seen[job.output] = job.pair
    return jobs


def use_one_thread() -> None:
    """A worker's settings (one worker per core): torch and GDAL on one thread each, unless
    ``OMP_NUM_THREADS`` or ``GDAL_NUM_THREADS`` say otherwise."""
    from georef import threads

    os.environ.setdefault("GDAL_NUM_THREADS", "1")
    threads.request(1 if "OMP_NUM_THREADS" not in os.environ else None)


def align_pair(job: Job, options: AlignOptions, outputs: OutputOptions) -> dict:
    """The task: align one pair, write its outputs, and return its row (never raises for a bad pair)."""
    from georef.workflow import align_file

    use_one_thread()
    # Dask's trim threshold alone, without georef's mapping threshold beside it (georef.allocator).
    if TRIM_THRESHOLD in os.environ and MMAP_THRESHOLD not in os.environ:
        log.warning("%s is set in this worker without %s: pairs take about twice as long; start workers with "
                    "DASK_DISTRIBUTED__NANNY__PRE_SPAWN_ENVIRON__%s=None",
                    TRIM_THRESHOLD, MMAP_THRESHOLD, TRIM_THRESHOLD)
    row = results.pair_row(job)
    start = time.perf_counter()
    alignment = None
    try:
        output = None if outputs.in_place else job.output
        alignment = align_file(job.pair.target, job.pair.reference,
                               dataclasses.replace(outputs, output=output, report=job.report),
                               pair_options(job.pair, options))
        row.update(status="aligned", exit_code=0)
    except QualityGateFailed as exc:
        alignment = exc.alignment
        row.update(status="refused", exit_code=exc.exit_code, reason=exc.render())
    except GeorefError as exc:
        row.update(status="failed" if exc.exit_code == 3 else "bad input", exit_code=exc.exit_code,
                   reason=exc.render())
    except Exception as exc:  # a bug: recorded, the batch goes on
        row.update(status="error", exit_code=1, reason=_unexpected(exc))
    row.update(seconds=round(time.perf_counter() - start, 3), worker=f"{socket.gethostname()}:{os.getpid()}",
               peak_rss_mb=results.peak_rss_mb())
    if alignment is not None:
        row.update(results.alignment_columns(alignment, job.pair.target, options.product_bands))
    return row


def run(pairs: Sequence[Pair], out_dir: str | Path, options: AlignOptions | None = None,
        outputs: OutputOptions = OutputOptions(report_figures=False), output_format: str = "tif", client=None,
        resume: bool = False, reporter: Reporter | None = None):
    """Align every pair on a Dask cluster; write ``results.csv``, ``footprints.gpkg`` and ``report.md``.

    Args:
        pairs: what to align (see :mod:`georef.batch.pairs`).
        out_dir: the batch's folder: outputs (``aligned/``) of pairs that name none,
            per-pair JSON reports (``reports/``) and the results.
        options: alignment settings of every pair.
        outputs: output settings of every pair (``output`` and ``report`` are the batch's).
        output_format: ``tif`` or ``vrt``, for pairs that name no output.
        client: a ``dask.distributed.Client``; default a local cluster (see :func:`start_client`).
        resume: skip pairs whose row in an existing ``results.csv`` has the same key
            (inputs, sizes, times and settings); run the rest, replacing their outputs.
        reporter: told of each finished pair (stage ``pairs``).

    Returns:
        The results table (a pandas DataFrame, one row per pair, in the order given).

    Raises:
        BatchInputError, InvalidOption: bad pairs or settings, before any work.
        OutputExistsError: results of an earlier batch in ``out_dir`` without ``resume`` or ``overwrite``.
    """
    from dask.distributed import as_completed

    options = options or AlignOptions()
    options.validate()
    if output_format not in FORMATS:
        raise InvalidOption(f"{{param:output_format}} {output_format!r} is not one of {', '.join(FORMATS)}")
    out_dir = Path(out_dir)
    jobs = plan_jobs(pairs, out_dir, options, outputs, output_format)
    manifest = results.Manifest(out_dir / results.RESULTS_CSV)
    finished = manifest.load() if resume else {}
    if not resume:
        check_destinations([manifest.path], outputs.overwrite)
    todo = [job for job in jobs if job.key not in finished]
    replace_outputs = outputs.overwrite or resume
    check_destinations([job.report for job in todo] + ([] if outputs.in_place else [job.output for job in todo]),
                       replace_outputs)
    outputs = dataclasses.replace(outputs, overwrite=True)  # every destination was checked above
    log.info("%d pairs: %d to run, %d finished before", len(jobs), len(todo), len(jobs) - len(todo))
    own_client = client is None
    if own_client:
        client = start_client()
    stages = Stages(reporter)
    manifest.start(finished, sorted({k for pair in pairs for k in pair.extra}))
    try:
        with stages.stage("pairs", len(todo)) as step:
            futures = {client.submit(align_pair, job, options, outputs, key=f"georef-align-{job.key}",
                                     retries=RETRIES, pure=False): job for job in todo}
            for future in as_completed(futures):
                job = futures[future]
                try:
                    row = future.result()
                except Exception as exc:  # the task's worker died more often than Dask allows
                    row = {**results.pair_row(job), "status": "error", "exit_code": 1, "reason": _unexpected(exc)}
                manifest.append(row)
                if row["status"] != "aligned":
                    log.warning("%s", row.get("reason") or f"{job.pair.target}: {row['status']}")
                step(1)
    finally:
        for job in todo:  # a worker killed while writing leaves its temporary files
            remove_leftovers([job.output, job.report, sidecar_path(job.output)])
        if own_client:
            stop_client(client)
    table = manifest.finish([job.key for job in jobs])
    results.write_summary(table, out_dir, stages.seconds.get("pairs", 0.0), len(todo))
    return table
