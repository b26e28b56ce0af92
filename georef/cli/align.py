"""``georef align``: align a target onto a reference."""

from __future__ import annotations

import click

from georef.cli import options
from georef.errors import QualityGateFailed


@click.command()
@click.argument("target", type=options.raster_input)
@click.option("--ref", "reference", required=True, type=options.raster_input,
              help="Georeferenced reference: raster, Sentinel-2 .SAFE folder or zip, or band files joined by commas.")
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="Output: a GeoTIFF, a .vrt over the target's own pixels, or with --sidecar a second name for it.")
@click.option("--dry-run", is_flag=True, help="Write no raster: estimate, and write the --report only.")
@options.alignment
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
    opts = options.alignment_from(kw)
    try:
        result = align_file(target, reference, outputs, opts, reporter)
    except QualityGateFailed as exc:
        options.note(summary(exc.alignment))
        raise
    options.note(summary(result))
    if not dry_run:
        options.note("wrote " + ", ".join(map(str, raster_outputs(outputs, target))))
