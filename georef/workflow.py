"""File workflows: align a file, apply GCPs to a file, export GCPs; each writes all its outputs or none.

Every destination is checked before the work starts (:func:`georef.files.check_destinations`);
the outputs are written to temporary files and renamed together at the end.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

from rasterio.enums import Resampling

from georef import gcps, inputs, raster
from georef.errors import MatchingError, QualityGateFailed
from georef.files import Staging, check_destinations
from georef.gcpfit import alignment_from_gcps
from georef.options import AlignOptions, OutputOptions
from georef.pipeline import estimate_alignment
from georef.progress import Reporter, Stages
from georef.report import report_paths, write_failure_report, write_report
from georef.result import Alignment
from georef.transforms import AUTO
from georef.write import write_aligned, write_chunks, write_warped

log = logging.getLogger(__name__)


def planned_outputs(outputs: OutputOptions) -> list[Path]:
    """Every file that writing ``outputs`` may create."""
    paths = [Path(outputs.output)] if outputs.output is not None else []
    if outputs.report is not None:
        paths += report_paths(outputs.report, outputs.report_figures)
    return paths


def align_file(target: str | Path, reference: str | Path, outputs: OutputOptions = OutputOptions(),
               options: AlignOptions | None = None, reporter: Reporter | None = None) -> Alignment:
    """Estimate an alignment, apply the quality gate, write the output and the report.

    Args:
        target, reference: the inputs (see :func:`georef.pipeline.estimate_alignment`).
        outputs: what to write; with no ``output``, only the report (a dry run).
        options: alignment settings.
        reporter: told of each stage (progress).

    Raises:
        InvalidOption, OutputExistsError, OutputError: before any work.
        MatchingError: nothing could be fitted; the report (if asked) says why, nothing else is written.
        QualityGateFailed: the result failed the gate and ``force`` is off; the
            report is written, the output is not.
    """
    options = options or AlignOptions()
    options.validate()
    outputs.validate()
    check_destinations(planned_outputs(outputs), outputs.overwrite)
    try:
        alignment = estimate_alignment(target, reference, options, reporter)
    except MatchingError as exc:
        if outputs.report is not None:
            with Staging(outputs.overwrite) as staging:
                write_failure_report(outputs.report, target, reference, exc.render(), staging)
                staging.commit()
        raise
    alignment = write_outputs(alignment, target, outputs, options.product_bands, reporter)
    if not alignment.quality.passed and not outputs.force:
        raise QualityGateFailed("alignment failed the quality gate (" + "; ".join(alignment.quality.reasons)
                                + "); nothing written", target, alignment)
    return alignment


def write_outputs(alignment: Alignment, target: str | Path, outputs: OutputOptions, product_bands: str = "TCI",
                  reporter: Reporter | None = None) -> Alignment:
    """Write the raster (where the gate passed, or ``force``) and the report, all or nothing.

    Args:
        alignment: the result to apply.
        target: the raster whose pixels are written (never modified).
        outputs: what to write.
        product_bands: bands of a Sentinel-2 product target.
        reporter: told of the write stage.

    Returns:
        The alignment, its timings completed by the write stage.
    """
    stages = Stages(reporter)
    write_raster = outputs.output is not None and (alignment.quality.passed or outputs.force)
    with Staging(outputs.overwrite) as staging:
        if write_raster:
            with stages.stage("write", write_chunks(alignment.height)) as step, raster.bounded_gdal_cache(), \
                    inputs.ResolvedInput(target, product_bands) as readable:
                if outputs.warp:
                    write_warped(readable, outputs.output, alignment, Resampling[outputs.resampling],
                                 outputs.target_res, staging, outputs.max_output_pixels)
                else:
                    write_aligned(readable, outputs.output, alignment, outputs.gcps, staging, step)
        if outputs.report is not None:
            write_report(outputs.report, alignment, outputs.output if write_raster else None,
                         outputs.report_figures, staging, stages.seconds)
        staging.commit()
    return replace(alignment, timings={**alignment.timings, **stages.seconds})


def fit_file(gcp_file: str | Path, target: str | Path, outputs: OutputOptions, model: str = AUTO,
             reference: str | Path | None = None, reporter: Reporter | None = None) -> Alignment:
    """Fit a model to the enabled GCPs of a file and write the target with it (pixels kept, or warped).

    Args:
        gcp_file: any format :func:`georef.gcps.read` reads.
        target: the raster they belong to.
        outputs: what to write (``output`` is required).
        model: a model name or ``auto``.
        reference: raster whose grid a warp snaps to.
        reporter: told of the write stage.

    Raises:
        GcpFormatError, DegenerateGcps: the GCPs cannot be read or cannot determine the model.
    """
    outputs.validate()
    check_destinations(planned_outputs(outputs), outputs.overwrite)
    alignment = alignment_from_gcps(gcps.read(gcp_file), target, model, reference, source=gcp_file)
    return write_outputs(alignment, target, outputs, reporter=reporter)


def export_gcps(source: str | Path, destination: str | Path, inliers_only: bool = False,
                overwrite: bool = False) -> gcps.GcpTable:
    """Read the GCPs of ``source`` (a report, a GeoTIFF with GCPs, any GCP format) and write them to ``destination``."""
    check_destinations(gcps.destinations(destination), overwrite)
    table = gcps.read(source)
    if inliers_only:
        table = table.subset(table.inlier)
    with Staging(overwrite) as staging:
        gcps.write(table, destination, staging)
        staging.commit()
    return table
