"""``georef gcps``: export GCPs with residuals to GIS formats."""

from __future__ import annotations

import click

from georef.cli import options


@click.command()
@click.argument("source", type=click.Path(dir_okay=False))
@click.option("--to", "destination", required=True, type=click.Path(dir_okay=False),
              help="File to write: .shp, .gpkg, .geojson, .csv or .points (QGIS Georeferencer).")
@click.option("--inliers-only", is_flag=True, help="Leave out the outliers.")
@click.option("--overwrite", is_flag=True, help="Replace an existing file (regular files only).")
def gcps(source, destination, inliers_only, overwrite):
    """Export the tie points of SOURCE (a report JSON or a GeoTIFF with GCPs) with their residuals."""
    from georef.workflow import export_gcps

    table = export_gcps(source, destination, inliers_only=inliers_only, overwrite=overwrite)
    options.note(f"wrote {len(table)} GCPs to {destination}")
