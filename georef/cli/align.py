"""``georef align``: align a target onto a reference."""

from __future__ import annotations

import click

from georef.cli import options
from georef.errors import QualityGateFailed
from georef.options import AlignOptions, RefineOptions, TileOptions


@click.command()
@click.argument("target", type=options.raster_input)
@click.option("--ref", "reference", required=True, type=options.raster_input,
              help="Georeferenced reference: raster, Sentinel-2 .SAFE folder or zip, or band files joined by commas.")
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="Output: a GeoTIFF, a .vrt over the target's own pixels, or with --sidecar a second name for it.")
@click.option("--dry-run", is_flag=True, help="Write no raster: estimate, and write the --report only.")
@options.matcher
@options.model
@options.bands
@options.weights
@options.max_shift
@options.target_crs
@click.option("--threshold", type=options.Finite(0, low_open=True), default=AlignOptions.threshold_px,
              show_default=True, help="RANSAC inlier threshold, px.")
@options.gate
@click.option("--refine/--no-refine", default=RefineOptions.enabled, show_default=True,
              help="Refine the fit to sub-pixel precision by local phase correlation.")
@click.option("--rotation-search", is_flag=True, help="Also try the target turned by 90, 180 and 270 degrees.")
@click.option("--correlation/--no-correlation", default=AlignOptions.correlation_first, show_default=True,
              help="Try one correlation of the whole target before the feature matcher.")
@click.option("--force", is_flag=True, help="Write the output even if the quality gate fails (the report says so).")
@options.mask_target
@options.mask_ref
@click.option("--tile-size", type=click.IntRange(min=0), default=TileOptions.size, show_default=True,
              help="Window side of the full-resolution pass over large targets, px; 0: coarse only.")
@click.option("--tile-overlap", type=click.IntRange(min=0), default=TileOptions.overlap, show_default=True)
@click.option("--max-windows", type=click.IntRange(min=1), default=TileOptions.max_windows, show_default=True,
              help="Most windows matched; a larger grid is thinned evenly.")
@click.option("--window-precision", type=options.Finite(low=0), default=TileOptions.target_fit_ce90_px,
              show_default=True, help="Windows are added, a round at a time, until the fit's statistical CE90 "
              "is this small, px; 0: every window.")
@options.jobs
@click.option("--global-search", is_flag=True,
              help="Ignore the target's georeference and search the whole reference (automatic without one).")
@options.approx_center
@options.device
@options.outputs
@options.progress
def align(target, reference, output, dry_run, **kw):
    """Align TARGET onto the reference and write it with a corrected georeference.

    TARGET may be a raster, a Sentinel-2 .SAFE folder or zip, or single-band files joined by commas.
    """
    from georef.report import summary
    from georef.workflow import align_file, raster_outputs

    if output is None and not dry_run and not kw["in_place"]:
        raise click.UsageError("give the output with -o OUT.tif, or --dry-run to only estimate (with --report)")
    if output is not None and dry_run:
        raise click.UsageError("-o and --dry-run exclude each other")
    outputs = options.outputs_from(output, kw, force=kw.pop("force"))
    reporter = options.reporter_from(kw)
    opts = AlignOptions(
        matcher=kw["matcher"], model=kw["model"], **options.split_bands(kw["bands"]), max_shift_m=kw["max_shift"],
        threshold_px=kw["threshold"], refine=RefineOptions(enabled=kw["refine"]),
        rotation_search=kw["rotation_search"], weights=kw["weights"], target_crs=kw["target_crs"],
        gate=options.gate_from(kw),
        tiles=TileOptions(size=kw["tile_size"], overlap=kw["tile_overlap"], max_windows=kw["max_windows"],
                          target_fit_ce90_px=kw["window_precision"], jobs=kw["jobs"]),
        mask_target=kw["mask_target"], mask_ref=kw["mask_ref"], global_search=kw["global_search"],
        approx_center=kw["approx_center"], device=kw["device"], correlation_first=kw["correlation"],
    )
    try:
        result = align_file(target, reference, outputs, opts, reporter)
    except QualityGateFailed as exc:
        click.echo(summary(exc.alignment), err=True)
        raise
    click.echo(summary(result), err=True)
    if not dry_run:
        click.echo("wrote " + ", ".join(map(str, raster_outputs(outputs, target))), err=True)
