"""``georef fit``: apply (edited) GCPs to a target."""

from __future__ import annotations

import click

from georef.cli import options


@click.command()
@click.argument("gcp_file", type=click.Path(dir_okay=False))
@click.argument("target", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="GeoTIFF to write.")
@options.model
@click.option("--ref", "reference", type=click.Path(dir_okay=False), help="Raster whose grid --warp snaps to.")
@click.option("--report", type=click.Path(dir_okay=False), help="JSON report to write.")
@click.option("--gcps", "n_gcps", type=click.IntRange(min=3), help="Embed N GCPs instead of a geotransform.")
@options.warp
@options.target_res
@options.resampling
@options.overwrite
def fit(gcp_file, target, output, model, reference, report, n_gcps, warp, target_res, resampling, overwrite):
    """Fit MODEL to the enabled GCPs of GCP_FILE (any format of `georef gcps`) and write TARGET with it."""
    from georef.gcps import fit_file
    from georef.report import summary

    result = fit_file(gcp_file, target, output, model, reference=reference, report=report, gcps=n_gcps, warp=warp,
                      resampling=resampling, target_res=target_res, overwrite=overwrite)
    click.echo(summary(result), err=True)
    click.echo(f"wrote {output}", err=True)
