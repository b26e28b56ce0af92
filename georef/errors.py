"""Errors raised by georef.

Every error derives from :class:`GeorefError` and from the closest built-in, so
callers can catch either. Messages are one line and name the file at fault.

A message may name a parameter as ``{param:name}``: Python callers read the
parameter's name (``overwrite``), the command line its flag (``--overwrite``),
so each front end gives advice in its own terms (see :meth:`GeorefError.render`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

_PARAM = re.compile(r"\{param:(\w+)\}")


def one_line(text: object, limit: int | None = None) -> str:
    """``text`` with its whitespace (newlines too) collapsed, cut to ``limit`` characters: for a message."""
    return " ".join(str(text).split())[:limit]


class GeorefError(Exception):
    """Root of all georef errors.

    Args:
        message: what is wrong, one line; ``{param:name}`` marks a parameter's name.
        path: the file at fault, if any; it is put in front of the message.
    """

    exit_code = 2

    def __init__(self, message: str, path: str | Path | None = None) -> None:
        self.path = None if path is None else str(path)
        self.message = message
        super().__init__(self.render())

    def render(self, name_of: Callable[[str], str] = str) -> str:
        """The message, each ``{param:name}`` replaced by ``name_of(name)`` (default the name itself)."""
        text = _PARAM.sub(lambda m: name_of(m[1]), self.message)
        return f"{self.path}: {text}" if self.path else text

    def name_instead(self, temporary: str | Path, path: str | Path) -> None:
        """Name ``path`` wherever this error names ``temporary``, a file made to stand for it (a VRT over the
        user's input), which the user never saw and which is gone once the error is read."""
        temporary, path = str(temporary), str(path)
        if self.path == temporary:
            self.path = path
        self.message = self.message.replace(temporary, path)
        self.args = (self.render(),)


class InvalidOption(GeorefError, ValueError):
    """An option value is out of range, not finite, or inconsistent with another."""


class RasterReadError(GeorefError, OSError):
    """A raster is missing or GDAL cannot read it."""


class MissingGeoreference(GeorefError, ValueError):
    """A raster lacks the CRS or geotransform that the operation needs."""


class CRSMismatch(GeorefError, ValueError):
    """PROJ knows no way from one input's CRS to the other's (a local engineering CRS, for instance)."""


class SearchTooLarge(GeorefError, ValueError):
    """The reference area to search is too large to read at the pixel size it would be matched at."""


class BandError(GeorefError, IndexError):
    """A requested band does not exist, or holds what cannot be matched (complex numbers)."""


class EmptyDataError(GeorefError, ValueError):
    """The data to match are all nodata or have no contrast."""


class NoOverlapError(GeorefError, ValueError):
    """Target and reference footprints do not overlap within the search margin."""


class WeightsUnavailable(GeorefError, FileNotFoundError):
    """A model's weight file is neither given, cached, nor fetchable, or does not fit the model."""


class WeightsChecksumError(GeorefError, ValueError):
    """A weight file does not have the expected SHA-256."""


class GcpFormatError(GeorefError, ValueError):
    """A GCP file cannot be read or written in the format its extension names."""


class DegenerateGcps(GeorefError, ValueError):
    """GCPs that cannot determine the model: too few, duplicated, collinear or not finite."""


class OutputExistsError(GeorefError, FileExistsError):
    """The output exists and overwriting was not asked for."""


class OutputError(GeorefError, OSError):
    """An output cannot be written: unwritable folder, a special file in its place, or two outputs on one path."""


class MatchingError(GeorefError, RuntimeError):
    """Too few matches to fit any transform: a failed alignment, not bad input."""

    exit_code = 3


class QualityGateFailed(GeorefError, RuntimeError):
    """The fitted transform failed the quality gate; nothing was written.

    Args:
        message, path: as for :class:`GeorefError`.
        alignment: the failed :class:`georef.result.Alignment`.
    """

    exit_code = 3

    def __init__(self, message: str, path: str | Path | None = None, alignment=None) -> None:
        super().__init__(message, path)
        self.alignment = alignment


class BatchInputError(GeorefError, ValueError):
    """A batch's list of pairs cannot be read: a bad table, an empty glob, an unreadable STAC file."""


class BatchIncomplete(GeorefError, RuntimeError):
    """Some pairs of a batch failed; the others were written and every pair is in the results."""

    exit_code = 3
