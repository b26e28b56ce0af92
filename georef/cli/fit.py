"""``georef fit``: apply (edited) GCPs to a target."""

from __future__ import annotations

import click

from georef.cli import options


@click.command()
@click.argument("gcp_file", type=click.Path(dir_okay=False))
@click.argument("target", type=click.Path(dir_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="Output: a GeoTIFF, a .vrt over the target, or with --sidecar a second name for the target.")
@options.model
@click.option("--ref", "reference", type=click.Path(dir_okay=False), help="Raster whose grid --warp snaps to.")
@click.option("--gcp-crs", callback=options.crs_option,
              help="CRS of the GCPs where GCP_FILE names none [default: the target's, else the reference's].")
@options.outputs
@options.progress
def fit(gcp_file, target, output, model, reference, gcp_crs, **kw):
    """Fit MODEL to the enabled GCPs of GCP_FILE (any format of `georef gcps`) and write TARGET with it."""
    from georef.report import summary
    from georef.workflow import fit_file, raster_outputs

    if output is None and not kw["in_place"]:
        raise click.UsageError("give the output with -o OUT.tif (or --sidecar --in-place)")
    outputs = options.outputs_from(output, kw)
    result = fit_file(gcp_file, target, outputs, model, reference, options.reporter_from(kw), gcp_crs)
    options.note(summary(result))
    options.note("wrote " + ", ".join(map(str, raster_outputs(outputs, target))))
