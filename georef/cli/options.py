"""Options shared by several commands."""

from __future__ import annotations

import click

from georef.fitting import MODELS
from georef.matchers import MATCHERS
from georef.models import WARP_MODELS


def _bands(ctx, param, value):
    if not value:
        return None
    try:
        bands = tuple(int(b) for b in value.split(","))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a comma-separated list of band numbers") from None
    if any(b < 1 for b in bands):
        raise click.BadParameter("band numbers start at 1")
    return bands


matcher = click.option(
    "--matcher", type=click.Choice(MATCHERS), default="xfeat", show_default=True, help="Feature matcher."
)
model = click.option(
    "--model", type=click.Choice(MODELS + WARP_MODELS), default="affine", show_default=True,
    help="Transform model; poly1-3 and tps travel as GCPs.",
)
warp = click.option("--warp", is_flag=True, help="Write a resampled Cloud-Optimized GeoTIFF on the reference grid.")
target_res = click.option("--target-res", type=click.FloatRange(min=0, min_open=True),
                          help="Pixel size of the --warp output [default: the reference's].")
resampling = click.option("--resampling", type=click.Choice(["nearest", "bilinear", "cubic", "lanczos"]),
                          default="cubic", show_default=True, help="Resampling of --warp.")
bands = click.option("--bands", callback=_bands, help="Bands to match, 1-based, e.g. 3,2,1 [default: true colour].")
weights = click.option(
    "--weights", type=click.Path(dir_okay=False), help="Matcher weight file [default: cached or fetched]."
)
max_shift = click.option(
    "--max-shift",
    type=click.FloatRange(min=0),
    default=600.0,
    show_default=True,
    help="Search margin around the target footprint, metres.",
)
overwrite = click.option("--overwrite", is_flag=True, help="Replace existing outputs.")
