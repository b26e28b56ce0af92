"""``georef align``: align a target onto a reference."""

from __future__ import annotations

import sys

import click

from georef.align import AlignOptions, align_file
from georef.cli import options
from georef.errors import QualityGateFailed
from georef.quality import QualityGate
from georef.report import summary
from georef.tiles import TileOptions


@click.command()
@click.argument("target", type=options.raster_input)
@click.option("--ref", "reference", required=True, type=options.raster_input,
              help="Georeferenced reference: raster, Sentinel-2 .SAFE folder or zip, or band files joined by commas.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Aligned GeoTIFF to write.")
@click.option("--report", type=click.Path(dir_okay=False), help="JSON report to write.")
@options.matcher
@options.model
@options.bands
@options.weights
@options.max_shift
@click.option("--gcps", type=click.IntRange(min=3), help="Embed N well-spread tie points as GCPs instead of a geotransform.")
@click.option("--target-crs", help="CRS of a target with a world file but no CRS [default: the reference's].")
@click.option("--threshold", type=click.FloatRange(min=0.1), default=AlignOptions.threshold_px, show_default=True,
              help="RANSAC inlier threshold, px.")
@click.option("--min-inliers", type=click.IntRange(min=1), default=QualityGate.min_inliers, show_default=True)
@click.option("--max-rmse", type=click.FloatRange(min=0), default=QualityGate.max_rmse_px, show_default=True, help="Pixels.")
@click.option("--min-coverage", type=click.FloatRange(0, 1), default=QualityGate.min_coverage, show_default=True)
@click.option("--refine/--no-refine", default=True, show_default=True,
              help="Refine the fit to sub-pixel precision by local phase correlation.")
@click.option("--rotation-search", is_flag=True, help="Also try the target turned by 90, 180 and 270 degrees.")
@click.option("--force", is_flag=True, help="Write the output even if the quality gate fails (the report says so).")
@options.mask_target
@options.mask_ref
@click.option("--tile-size", type=click.IntRange(min=0), default=TileOptions.size, show_default=True,
              help="Window side of the full-resolution pass over large targets, px; 0: coarse only.")
@click.option("--tile-overlap", type=click.IntRange(min=0), default=TileOptions.overlap, show_default=True)
@click.option("--max-windows", type=click.IntRange(min=1), default=TileOptions.max_windows, show_default=True,
              help="Most windows matched; a larger grid is thinned evenly.")
@options.jobs
@click.option("--global-search", is_flag=True,
              help="Ignore the target's georeference and search the whole reference (automatic without one).")
@click.option("--approx-center", nargs=2, type=float, metavar="LON LAT", help="Where the global search looks.")
@options.progress
@options.warp
@options.target_res
@options.resampling
@options.overwrite
def align(target, reference, output, report, matcher, model, bands, weights, max_shift, gcps, target_crs,
          threshold, min_inliers, max_rmse, min_coverage, refine, rotation_search, force, mask_target, mask_ref,
          tile_size, tile_overlap, max_windows, jobs, global_search, approx_center, progress, warp, target_res,
          resampling, overwrite):
    """Align TARGET onto the reference and write it with a corrected georeference.

    TARGET may be a raster, a Sentinel-2 .SAFE folder or zip, or single-band files joined by commas.
    """
    opts = AlignOptions(
        matcher=matcher,
        model=model,
        **options.split_bands(bands),
        max_shift_m=max_shift,
        threshold_px=threshold,
        refine=refine,
        rotation_search=rotation_search,
        weights=weights,
        target_crs=target_crs,
        gate=QualityGate(min_inliers, max_rmse, min_coverage),
        tiles=TileOptions(size=tile_size, overlap=tile_overlap, max_windows=max_windows, jobs=jobs),
        mask_target=mask_target,
        mask_ref=mask_ref,
        global_search=global_search,
        approx_center=tuple(approx_center) if approx_center else None,
    )
    if progress is None:
        progress = sys.stderr.isatty()
    try:
        result = align_file(target, reference, output, opts, gcps=gcps, report=report, overwrite=overwrite,
                            force=force, warp=warp, resampling=resampling, target_res=target_res,
                            progress=progress)
    except QualityGateFailed as exc:
        click.echo(summary(exc.alignment), err=True)
        raise
    click.echo(summary(result), err=True)
    if output:
        click.echo(f"wrote {output}", err=True)
