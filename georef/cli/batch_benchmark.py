"""``georef batch-benchmark``: a batch against a loop in one process and a shell loop of ``georef align``."""

from __future__ import annotations

from pathlib import Path

import click

from georef.cli import options


@click.command("batch-benchmark")
@click.argument("data", type=click.Path(exists=True, file_okay=False))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Work folder.")
@click.option("--pairs", type=click.IntRange(min=2), default=60, show_default=True,
              help="Pairs aligned by each way (winter and summer_prev against summer).")
@click.option("--shell-pairs", type=click.IntRange(min=1), default=12, show_default=True,
              help="Pairs of the shell loop of georef align calls.")
def batch_benchmark(data, out_dir, pairs, shell_pairs):
    """Time DATA's pairs (an s2-seasons folder) aligned in one process (2 threads, 1 thread), by georef batch on 1
    and 2 workers, and by a shell loop of georef align; write OUT/batch.md and batch.json."""
    from georef.benchmark.batch import run_batch_benchmark

    options.quiet_dask()
    run_batch_benchmark(data, out_dir, pairs, shell_pairs)
    click.echo((Path(out_dir) / "batch.md").read_text())
