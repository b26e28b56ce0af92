"""Options shared by several commands, their checks, and the flags that library messages name.

Imports nothing heavy: every ``--help`` reads this module.
"""

from __future__ import annotations

import math
import re
import sys

import click

from georef.matchers import MATCHERS
from georef.options import (MAX_OUTPUT_PIXELS, RESAMPLING, AlignOptions, OutputOptions, QualityGate, RefineOptions,
                            TileOptions, crs_problem)
from georef.transforms import MODEL_NAMES

#: Library parameter -> the flag that sets it, for error messages (others: ``--name-with-dashes``).
PARAM_FLAGS = {
    "approx_center": "--approx-center LON LAT",
    "max_shift_m": "--max-shift",
    "threshold_px": "--threshold",
    "max_rmse_px": "--max-rmse",
    "max_ce90_px": "--max-ce90",
    "lowpass_sigma": "--refine-lowpass",
    "product_bands": "--bands",
    "target_fit_ce90_px": "--window-precision",
    "output": "-o/--output",
    "reference_crs": "--ref-crs",
}


def flag(param: str) -> str:
    """The command-line flag of a library parameter."""
    return PARAM_FLAGS.get(param, "--" + param.replace("_", "-"))


class Finite(click.ParamType):
    """A finite float within a range (click's FloatRange lets NaN through every bound)."""

    name = "float"

    def __init__(self, low: float = -math.inf, high: float = math.inf, low_open: bool = False) -> None:
        self.low, self.high, self.low_open = low, high, low_open

    def convert(self, value, param, ctx):
        try:
            number = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number", param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        if number < self.low or (self.low_open and number == self.low) or number > self.high:
            lower = f"> {self.low:g}" if self.low_open else f">= {self.low:g}"
            bounds = lower if math.isinf(self.high) else f"{lower} and <= {self.high:g}"
            self.fail(f"{value} is out of range: must be {bounds}", param, ctx)
        return number


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


def crs_option(ctx, param, value):
    """Click callback: the value if PROJ knows it as a CRS."""
    problem = None if value is None else crs_problem(value)
    if problem:
        raise click.BadParameter(problem)
    return value


def _approx_center(ctx, param, value):
    if not value:
        return None
    lon, lat = value
    if not -180 <= lon <= 180 or not -90 <= lat <= 90:
        raise click.BadParameter(f"{lon:g} {lat:g} is not a longitude in [-180, 180] and a latitude in [-90, 90]")
    return (lon, lat)


matcher = click.option("--matcher", type=click.Choice(MATCHERS), default=AlignOptions.matcher, show_default=True,
                       help="Feature matcher (georef matchers lists them).")
model = click.option(
    "--model", type=click.Choice(MODEL_NAMES), default=AlignOptions.model, show_default=True,
    help="Transform model; auto: similarity unless the tie points support an affine; poly1-3 and tps travel "
         "as GCPs.",
)
bands = click.option("--bands", callback=_bands,
                     help="Bands to match, 1-based, e.g. 3,2,1 [default: true colour]; for a Sentinel-2 .SAFE "
                          "product TCI (default) or B04,B03,B02.")
raster_input = click.Path(exists=False)  # a file, a .SAFE folder or zip, or comma-separated band files
mask_target = click.option("--mask-target", metavar="MASK[:V1,V2|:bits=B1,B2]",
                           help="Raster of the target's extent marking pixels to keep out of matching: non-zero, "
                                "the values listed, or any of the flag bits listed set (0: least significant; "
                                "Landsat QA_PIXEL: bits=1,3,4). SCL:3,8,9,10 names a Sentinel-2 L2A product's own "
                                "scene classification.")
mask_ref = click.option("--mask-ref", metavar="MASK[:V1,V2|:bits=B1,B2]", help="Same for the reference.")
jobs = click.option("--jobs", type=click.IntRange(min=1), default=TileOptions.jobs, show_default=True,
                    help="Windows matched at once on large scenes.")
weights = click.option("--weights", type=click.Path(dir_okay=True),
                       help="Matcher weight file (superglue: SP.pth,SG.pth) [default: cached or fetched].")
max_shift = click.option("--max-shift", type=Finite(0),
                         help="Search margin around the target footprint, metres [default: 600, widened up to "
                              "10000 where nothing convincing is found].")
target_crs = click.option("--target-crs", callback=crs_option,
                          help="CRS of a target with a world file but no CRS, or given to a target with no "
                               "georeference [default: the reference's].")
ref_crs = click.option("--ref-crs", "reference_crs", callback=crs_option,
                       help="CRS of a reference with a world file but no CRS.")
approx_center = click.option("--approx-center", nargs=2, type=Finite(), metavar="LON LAT", callback=_approx_center,
                             help="Where the global search looks.")
device = click.option("--device", default=AlignOptions.device, show_default=True,
                      help="torch device of the matcher and the refinement: auto (CUDA where there is a GPU), "
                           "cpu, cuda.")


def _stacked(options: list):
    """One decorator applying ``options`` in order (the first one listed first in ``--help``)."""
    def decorate(function):
        for option in reversed(options):
            function = option(function)
        return function
    return decorate


_gate_options = [
    click.option("--min-inliers", type=click.IntRange(min=1), default=QualityGate.min_inliers, show_default=True,
                 help="Fewest unguided keypoint inliers (their significance is tested too)."),
    click.option("--max-rmse", type=Finite(0), default=QualityGate.max_rmse_px, show_default=True,
                 help="Largest RMSE of the tie points' residuals, target pixels (the reference's where coarser)."),
    click.option("--max-ce90", type=Finite(0, low_open=True), default=QualityGate.max_ce90_px, show_default=True,
                 help="Largest estimated error at the target's corners (CE90), target pixels."),
    click.option("--min-span", type=Finite(0, 1), default=QualityGate.min_span, show_default=True,
                 help="Smallest share of the target's width and height the measurements must span."),
    click.option("--max-repeat", type=Finite(0, 1), default=QualityGate.max_repeat, show_default=True,
                 help="Largest correlation of the target's content with itself shifted within reach of the "
                      "search: above it, a copy elsewhere fits as well."),
]


#: The quality gate's thresholds.
gate = _stacked(_gate_options)


def gate_from(kwargs: dict) -> QualityGate:
    return QualityGate(min_inliers=kwargs.pop("min_inliers"), max_rmse_px=kwargs.pop("max_rmse"),
                       max_ce90_px=kwargs.pop("max_ce90"), min_span=kwargs.pop("min_span"),
                       max_repeat=kwargs.pop("max_repeat"))


_output_options = [
    click.option("--report", type=click.Path(dir_okay=False),
                 help="JSON report to write (and beside it .md, .html and two plots)."),
    click.option("--gcps", "n_gcps", type=click.IntRange(min=3),
                 help="Embed N well-spread tie points as GCPs instead of a geotransform."),
    click.option("--warp", is_flag=True, help="Write a resampled Cloud-Optimized GeoTIFF on the reference grid."),
    click.option("--target-res", type=Finite(0, low_open=True),
                 help="Pixel size of the --warp output, reference units [default: the reference's]."),
    click.option("--resampling", type=click.Choice(RESAMPLING), default=OutputOptions.resampling, show_default=True,
                 help="Resampling of --warp."),
    click.option("--max-output-pixels", type=click.IntRange(min=1), default=MAX_OUTPUT_PIXELS, show_default=True,
                 help="Largest --warp output, pixels per band."),
    click.option("--sidecar", is_flag=True,
                 help="Copy no pixel: -o becomes a hard link to the target, its new georeference in a GDAL "
                      ".aux.xml beside it (with --in-place: beside the target itself)."),
    click.option("--in-place", is_flag=True,
                 help="With --sidecar: write TARGET.aux.xml (the previous one kept as .aux.xml.bak); no -o."),
    click.option("--overwrite", is_flag=True, help="Replace existing outputs (regular files only)."),
]


#: Everything :class:`OutputOptions` holds but the output path.
outputs = _stacked(_output_options)


def outputs_from(output, kwargs: dict, **extra) -> OutputOptions:
    """:class:`OutputOptions` from the options of :func:`outputs` (removed from ``kwargs``)."""
    return OutputOptions(
        output=output, report=kwargs.pop("report"), gcps=kwargs.pop("n_gcps"), warp=kwargs.pop("warp"),
        resampling=kwargs.pop("resampling"), target_res=kwargs.pop("target_res"),
        max_output_pixels=kwargs.pop("max_output_pixels"), overwrite=kwargs.pop("overwrite"),
        sidecar=kwargs.pop("sidecar"), in_place=kwargs.pop("in_place"), **extra,
    )


def note(message: str) -> None:
    """A line of the command's outcome on stderr (a summary, what was written), unless -q asked for errors only."""
    if not click.get_current_context().find_root().params.get("quiet"):
        click.echo(message, err=True)


def progress(function):
    """--progress/--no-progress and --progress-json."""
    function = click.option("--progress-json", is_flag=True,
                            help="One JSON object per stage event on stderr, for programs.")(function)
    return click.option("--progress/--no-progress", default=None,
                        help="Progress bars [default: when stderr is a terminal].")(function)


def reporter_from(kwargs: dict):
    """The progress reporter the options of :func:`progress` (removed from ``kwargs``) ask for."""
    from georef.progress import JsonReporter, Reporter, TerminalReporter

    bars, as_json = kwargs.pop("progress"), kwargs.pop("progress_json")
    if as_json:
        return JsonReporter(sys.stderr)
    if bars if bars is not None else sys.stderr.isatty():
        return TerminalReporter(sys.stderr)
    return Reporter()


_alignment_options = [
    matcher,
    model,
    bands,
    weights,
    max_shift,
    target_crs,
    ref_crs,
    click.option("--threshold", type=Finite(0, low_open=True), default=AlignOptions.threshold_px,
                 show_default=True, help="RANSAC inlier threshold, px."),
    gate,
    click.option("--refine/--no-refine", default=RefineOptions.enabled, show_default=True,
                 help="Refine the fit to sub-pixel precision by local phase correlation."),
    click.option("--rotation-search", is_flag=True, help="Also try the target turned by 90, 180 and 270 degrees (in a global search too)."),
    click.option("--correlation/--no-correlation", default=AlignOptions.correlation_first, show_default=True,
                 help="Try one correlation of the whole target before the feature matcher."),
    click.option("--force", is_flag=True, help="Write the output even if the quality gate fails (the report says so)."),
    mask_target,
    mask_ref,
    click.option("--tile-size", type=click.IntRange(min=0), default=TileOptions.size, show_default=True,
                 help="Window side of the full-resolution pass over large targets, px; 0: coarse only."),
    click.option("--tile-overlap", type=click.IntRange(min=0), default=TileOptions.overlap, show_default=True,
                 help="Overlap of neighbouring windows of that pass, px."),
    click.option("--max-windows", type=click.IntRange(min=1), default=TileOptions.max_windows, show_default=True,
                 help="Most windows matched; a larger grid is thinned evenly."),
    click.option("--window-precision", type=Finite(low=0), default=TileOptions.target_fit_ce90_px,
                 show_default=True, help="Windows are added, a round at a time, until the fit's statistical CE90 "
                 "is this small, px; 0: every window."),
    jobs,
    click.option("--global-search", is_flag=True,
                 help="Ignore the target's georeference and search the whole reference (automatic without one)."),
    approx_center,
    device,
]

#: Every setting of :class:`AlignOptions` (and ``--force``), shared by ``align`` and ``batch``.
alignment = _stacked(_alignment_options)


def alignment_from(kwargs: dict) -> AlignOptions:
    """:class:`AlignOptions` from the options of :data:`alignment` (``--force`` excepted)."""
    return AlignOptions(
        matcher=kwargs["matcher"], model=kwargs["model"], **split_bands(kwargs["bands"]),
        max_shift_m=kwargs["max_shift"], threshold_px=kwargs["threshold"],
        refine=RefineOptions(enabled=kwargs["refine"]), rotation_search=kwargs["rotation_search"], weights=kwargs["weights"], target_crs=kwargs["target_crs"],
        reference_crs=kwargs["reference_crs"],
        gate=gate_from(kwargs),
        tiles=TileOptions(size=kwargs["tile_size"], overlap=kwargs["tile_overlap"], max_windows=kwargs["max_windows"],
                          target_fit_ce90_px=kwargs["window_precision"], jobs=kwargs["jobs"]),
        mask_target=kwargs["mask_target"], mask_ref=kwargs["mask_ref"], global_search=kwargs["global_search"],
        approx_center=kwargs["approx_center"], device=kwargs["device"], correlation_first=kwargs["correlation"],
    )


def quiet_dask() -> None:
    """Dask logs every start and stop of its workers: shown with -vv only.

    ``distributed`` sets its loggers' levels when imported, so it is imported first.
    """
    import importlib
    import logging

    importlib.import_module("distributed")
    if not logging.getLogger("georef").isEnabledFor(logging.DEBUG):
        logging.getLogger("distributed").setLevel(logging.WARNING)
