"""Options shared by several commands."""

from __future__ import annotations

import re

import click

from georef.fitting import AUTO, MODELS
from georef.matchers import MATCHERS
from georef.models import WARP_MODELS


def _bands(ctx, param, value):
    """Band numbers (``3,2,1``), or for Sentinel-2 products ``TCI`` or band names (``B04,B03,B02``)."""
    if not value:
        return None
    parts = [b.strip() for b in value.split(",")]
    if all(re.fullmatch(r"TCI|B(0[1-9]|8A|1[0-2])", p, re.IGNORECASE) for p in parts):
        return value.upper()
    try:
        bands = tuple(int(b) for b in parts)
    except ValueError:
        raise click.BadParameter(f"{value!r} is neither band numbers (3,2,1) nor Sentinel-2 bands (TCI, B04,...)"
                                 ) from None
    if any(b < 1 for b in bands):
        raise click.BadParameter("band numbers start at 1")
    return bands


def split_bands(value) -> dict:
    """AlignOptions keywords for a --bands value: numbers go to ``bands``, names to ``product_bands``."""
    if isinstance(value, str):
        return {"product_bands": value}
    return {"bands": value}


matcher = click.option(
    "--matcher", type=click.Choice(MATCHERS), default="xfeat", show_default=True, help="Feature matcher."
)
model = click.option(
    "--model", type=click.Choice((AUTO, *MODELS, *WARP_MODELS)), default=AUTO, show_default=True,
    help="Transform model; auto: similarity unless the tie points support an affine; poly1-3 and tps travel "
         "as GCPs.",
)
warp = click.option("--warp", is_flag=True, help="Write a resampled Cloud-Optimized GeoTIFF on the reference grid.")
target_res = click.option("--target-res", type=click.FloatRange(min=0, min_open=True),
                          help="Pixel size of the --warp output [default: the reference's].")
resampling = click.option("--resampling", type=click.Choice(["nearest", "bilinear", "cubic", "lanczos"]),
                          default="cubic", show_default=True, help="Resampling of --warp.")
bands = click.option("--bands", callback=_bands,
                     help="Bands to match, 1-based, e.g. 3,2,1 [default: true colour]; for a Sentinel-2 .SAFE "
                          "product TCI (default) or B04,B03,B02.")
raster_input = click.Path(exists=False)  # a file, a .SAFE folder or zip, or comma-separated band files
mask_target = click.option("--mask-target", metavar="MASK[:V1,V2]",
                           help="Raster of target pixels to keep out of matching (non-zero, or the values listed).")
mask_ref = click.option("--mask-ref", metavar="MASK[:V1,V2]", help="Same for the reference.")
jobs = click.option("--jobs", type=click.IntRange(min=1), default=1, show_default=True,
                    help="Windows matched at once on large scenes.")
progress = click.option("--progress/--no-progress", default=None,
                        help="Progress bars [default: when stderr is a terminal].")
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
