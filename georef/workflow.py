"""File workflows: align a file, apply GCPs to a file, export GCPs; each writes all its outputs or none.

Every destination is checked before the work starts (:func:`georef.files.check_destinations`);
the outputs are written to temporary files and renamed together at the end.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

from rasterio.enums import Resampling

from georef import copyfree, gcps, inputs, raster
from georef.errors import InvalidOption, MatchingError, QualityGateFailed
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


def raster_outputs(outputs: OutputOptions, target: str | Path) -> list[Path]:
    """The files that carry the aligned raster (for a sidecar: the raster's name and its ``.aux.xml``)."""
    if outputs.in_place:
        return [copyfree.sidecar_path(target)]
    if outputs.sidecar:
        return [Path(outputs.output), copyfree.sidecar_path(outputs.output)]
    return [Path(outputs.output)] if outputs.output is not None else []


def check_outputs(outputs: OutputOptions, target: str | Path) -> None:
    """Refuse, before any work, outputs that cannot be written (see :func:`georef.files.check_destinations`).

    Raises:
        InvalidOption: inconsistent options, or a sidecar for a target that is not one file.
        OutputError, OutputExistsError: a destination cannot or must not be written.
    """
    outputs.validate()
    if outputs.sidecar:
        if not Path(target).is_file() or inputs.is_product(target):
            raise InvalidOption("{param:sidecar} needs a single raster file as target; "
                                "for a product or band files write a VRT (-o OUT.vrt)")
        if not outputs.in_place and Path(outputs.output).suffix.lower() != Path(target).suffix.lower():
            raise InvalidOption(f"{{param:output}} must keep the target's extension ({Path(target).suffix}) "
                                "with {param:sidecar}: it is the target under a second name")
    paths = [] if outputs.report is None else report_paths(outputs.report, outputs.report_figures)
    if outputs.in_place:  # the sidecar and its backup are replaced: that is what was asked
        check_destinations([copyfree.sidecar_path(target), copyfree.backup_path(target)], overwrite=True)
    else:
        paths += raster_outputs(outputs, target)
    check_destinations(paths, outputs.overwrite)


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
    check_outputs(outputs, target)
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
    kind = outputs.kind
    write_raster = kind is not None and (alignment.quality.passed or outputs.force)
    with Staging(outputs.overwrite) as staging:
        if write_raster:
            chunks = write_chunks(alignment.height) if kind == "geotiff" else 1
            with stages.stage("write", chunks) as step, raster.gdal_env(), \
                    inputs.ResolvedInput(target, product_bands) as readable:
                if kind == "sidecar":
                    copyfree.write_sidecar(target, alignment, outputs.output, staging)
                elif kind == "vrt":
                    copyfree.write_vrt(readable, outputs.output, alignment, outputs.gcps, staging)
                elif kind == "warp":
                    write_warped(readable, outputs.output, alignment, Resampling[outputs.resampling],
                                 outputs.target_res, staging, outputs.max_output_pixels)
                else:
                    write_aligned(readable, outputs.output, alignment, outputs.gcps, staging, step)
        if outputs.report is not None:
            written = raster_outputs(outputs, target)[0] if write_raster else None
            write_report(outputs.report, alignment, written, outputs.report_figures, staging, stages.seconds)
        staging.commit()
    return replace(alignment, timings={**alignment.timings, **stages.seconds})


def fit_file(gcp_file: str | Path, target: str | Path, outputs: OutputOptions, model: str = AUTO,
             reference: str | Path | None = None, reporter: Reporter | None = None,
             gcp_crs: str | None = None) -> Alignment:
    """Fit a model to the enabled GCPs of a file and write the target with it (pixels kept, or warped).

    Args:
        gcp_file: any format :func:`georef.gcps.read` reads.
        target: the raster they belong to.
        outputs: what to write (``output`` is required).
        model: a model name or ``auto``.
        reference: raster whose grid a warp snaps to.
        reporter: told of the write stage.
        gcp_crs: CRS of GCPs whose file names none; default the target's, else the reference's.

    Raises:
        GcpFormatError, DegenerateGcps: the GCPs cannot be read or cannot determine the model.
    """
    check_outputs(outputs, target)
    alignment = alignment_from_gcps(gcps.read(gcp_file), target, model, reference, source=gcp_file, crs=gcp_crs)
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
