"""``georef batch``: many pairs on Dask distributed (a local cluster, or a running one)."""

from __future__ import annotations

import click

from georef.cli import options


@click.command()
@click.argument("pairs_table", required=False, type=click.Path(dir_okay=False))
@click.option("--targets", help="Targets against one --ref: a glob ('scenes/*.jp2'), a folder, or a .txt of paths.")
@click.option("--stac", type=click.Path(dir_okay=False), help="A local STAC ItemCollection or Catalog JSON.")
@click.option("--asset", help="With --stac: the asset of each item to align (e.g. visual).")
@click.option("--ref", "reference", type=options.raster_input, help="The reference of every target.")
@click.option("--ref-item", help="With --stac: the id of the item whose asset is the reference.")
@click.option("--mask-asset", metavar="KEY[:V1,V2|:bits=B1,B2]",
              help="With --stac: the asset of each item that masks its image, e.g. scl:3,8,9,10 (the reference "
                   "item's too).")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Folder of the results (results.csv, footprints.gpkg, report.md) and of outputs named by none.")
@click.option("--format", "output_format", type=click.Choice(["tif", "vrt"]), default="tif", show_default=True,
              help="Output of pairs that name none: a GeoTIFF, or a VRT over the target (no pixel copied).")
@click.option("--workers", type=click.IntRange(min=1), help="Worker processes of the local cluster [default: cores].")
@click.option("--scheduler", help="Address of a running Dask scheduler (tcp://host:8786) instead of a local cluster.")
@click.option("--resume", is_flag=True, help="Skip pairs finished in OUT/results.csv with the same inputs and options.")
@options.alignment
@options.outputs
@options.progress
def batch(pairs_table, targets, stac, asset, reference, ref_item, mask_asset, out_dir, output_format, workers,
          scheduler, resume, **kw):
    """Align many pairs: PAIRS_TABLE (CSV or TSV: target,reference[,output][,mask_target][,mask_ref], other
    columns kept), --targets with --ref, or --stac with --asset and --ref or --ref-item.

    Exit code 0 when every pair aligned, 3 when some did not (each has its reason in results.csv), 2 for a
    bad list of pairs.
    """
    from georef.batch import engine, pairs
    from georef.errors import BatchIncomplete

    options.quiet_dask()

    sources = [s for s in (pairs_table, targets, stac) if s]
    if len(sources) != 1:
        raise click.UsageError("give one source of pairs: PAIRS_TABLE, --targets or --stac")
    if stac and not asset:
        raise click.UsageError("--stac needs --asset")
    if mask_asset and not stac:
        raise click.UsageError("--mask-asset applies to --stac only")
    if targets and not reference:
        raise click.UsageError("--targets needs --ref")
    if pairs_table:
        todo = pairs.read_table(pairs_table)
    elif targets:
        todo = pairs.series(targets, reference)
    else:
        todo = pairs.stac_pairs(stac, asset, reference, ref_item, mask_asset)
    outputs = options.outputs_from(None, kw, force=kw.pop("force"), report_figures=False)
    reporter = options.reporter_from(kw)
    opts = options.alignment_from(kw)
    opts.validate()
    client = engine.start_client(workers, scheduler)
    options.note(f"{len(todo)} pair(s); Dask dashboard: {client.dashboard_link}")
    try:
        table = engine.run(todo, out_dir, opts, outputs, output_format, client, resume, reporter)
    finally:
        engine.stop_client(client)
    counts = table["status"].value_counts()
    options.note(f"{counts.get('aligned', 0)} of {len(table)} pairs aligned; results in {out_dir}/results.csv")
    if counts.get("aligned", 0) < len(table):
        failed = ", ".join(f"{n} {status}" for status, n in counts.items() if status != "aligned")
        raise BatchIncomplete(f"{failed}; the reasons are in results.csv", out_dir)
