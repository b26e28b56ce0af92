"""Errors raised by georef.

Every error derives from :class:`GeorefError` and from the closest built-in, so
callers can catch either. Messages are one line and name the file at fault.
"""

from __future__ import annotations

from pathlib import Path


class GeorefError(Exception):
    """Root of all georef errors.

    Args:
        message: what is wrong, one line.
        path: the file at fault, if any; it is put in front of the message.
    """

    exit_code = 2

    def __init__(self, message: str, path: str | Path | None = None) -> None:
        self.path = None if path is None else str(path)
        self.message = message
        super().__init__(f"{self.path}: {message}" if self.path else message)


class RasterReadError(GeorefError, OSError):
    """A raster is missing or GDAL cannot read it."""


class MissingGeoreference(GeorefError, ValueError):
    """A raster lacks the CRS or geotransform that the operation needs."""


class BandError(GeorefError, IndexError):
    """A requested band does not exist."""


class EmptyDataError(GeorefError, ValueError):
    """The data to match are all nodata or have no contrast."""


class NoOverlapError(GeorefError, ValueError):
    """Target and reference footprints do not overlap within the search margin."""


class WeightsUnavailable(GeorefError, FileNotFoundError):
    """A model's weight file is neither given, cached, nor fetchable."""


class WeightsChecksumError(GeorefError, ValueError):
    """A fetched weight file does not have the expected SHA-256."""


class OutputExistsError(GeorefError, FileExistsError):
    """The output exists and overwriting was not asked for."""


class MatchingError(GeorefError, RuntimeError):
    """Too few matches to fit any transform: a failed alignment, not bad input."""

    exit_code = 3


class QualityGateFailed(GeorefError, RuntimeError):
    """The fitted transform failed the quality gate; nothing was written.

    Attributes:
        alignment: the failed :class:`georef.align.Alignment`, when one was fitted.
    """

    exit_code = 3
    alignment = None
