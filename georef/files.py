"""Writing outputs safely: every destination checked before the work, all written or none.

A command knows every file it will write before it starts. :func:`check_destinations`
refuses, up front, two outputs on one path, an existing output without
``overwrite``, anything at an output path that is not a regular file (a folder, a
device, a symbolic link), and a folder that cannot be written. :class:`Staging`
then writes each output to a temporary file beside its destination and renames
them all at the end; on an error, an interrupt or SIGTERM (see
:func:`terminate_on_sigterm`) the temporary files are removed and nothing is
left half-written. Without ``overwrite`` a destination is claimed exclusively
(a hard link), so two runs racing for one new path cannot both succeed.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import stat
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from glob import escape as glob_escape
from pathlib import Path

from georef.errors import OutputError, OutputExistsError

log = logging.getLogger(__name__)


def _key(path: Path) -> str:
    """One spelling per file: the parent resolved (symbolic links, ``..``), the name as given."""
    return os.path.normcase(str(path.absolute().parent.resolve() / path.name))


def _existing_ancestor(path: Path) -> Path:
    parent = path.absolute().parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    return parent


def check_destinations(paths: Iterable[str | Path], overwrite: bool = False) -> None:
    """Refuse, before any work, destinations that cannot or must not be written.

    Args:
        paths: every file the command will write.
        overwrite: existing regular files may be replaced.

    Raises:
        OutputError: two destinations on one path, a non-regular file in the way, or
            a folder that cannot be created or written.
        OutputExistsError: a destination exists and ``overwrite`` is off.
    """
    seen: dict[str, Path] = {}
    for path in map(Path, paths):
        key = _key(path)
        if key in seen:
            raise OutputError(f"is the destination of two outputs (also given as {seen[key]})", path)
        seen[key] = path
        if os.path.lexists(path):
            mode = os.lstat(path).st_mode
            if stat.S_ISLNK(mode):
                raise OutputError("is a symbolic link; give the path of the file itself", path)
            if not stat.S_ISREG(mode):
                raise OutputError("exists and is not a regular file (a folder or a device); it is never replaced",
                                  path)
            if not overwrite:
                raise OutputExistsError("exists; set {param:overwrite} to replace it", path)
        folder = _existing_ancestor(path)
        if not folder.is_dir():
            raise OutputError(f"cannot be created: {folder} is not a folder", path)
        if not os.access(folder, os.W_OK | os.X_OK):
            raise OutputError(f"cannot be written: no permission to write in {folder}", path)


def temporary_path(destination: Path) -> Path:
    """A hidden temporary name beside ``destination``, with its extension (GDAL picks drivers by it)."""
    return destination.with_name(f".{destination.name}.{uuid.uuid4().hex[:8]}.part{destination.suffix}")


def remove_leftovers(destinations: Iterable[str | Path]) -> None:
    """Remove the temporary files of ``destinations`` that a killed process left (see :func:`temporary_path`)."""
    for destination in map(Path, destinations):
        if destination.parent.is_dir():
            for leftover in destination.parent.glob(f".{glob_escape(destination.name)}.*.part*"):
                leftover.unlink(missing_ok=True)


class Staging:
    """Outputs written to temporary files, renamed to their destinations together by :meth:`commit`.

    Use as a context manager: leaving it by an exception (an interrupt included)
    removes every temporary file, and the destinations stay as they were.

    Args:
        overwrite: existing destinations may be replaced.
    """

    def __init__(self, overwrite: bool = False) -> None:
        self.overwrite = overwrite
        self.pending: list[tuple[Path, Path, bool]] = []

    def path(self, destination: str | Path, replace: bool | None = None) -> Path:
        """The temporary file to write for ``destination`` (its folder is created).

        ``replace`` overrides ``overwrite`` for this destination (a sidecar updated in place).
        """
        destination = Path(destination)
        destination.parent.mkdir(parents=True, exist_ok=True)
        tmp = temporary_path(destination)
        self.pending.append((tmp, destination, self.overwrite if replace is None else replace))
        return tmp

    def adopt(self, tmp: Path, destination: Path) -> None:
        """Also rename ``tmp``, written by other means (a shapefile's sidecar), to ``destination``."""
        self.pending.append((tmp, destination, self.overwrite))

    def commit(self) -> None:
        """Rename every temporary file to its destination; on a failure, undo the renames done so far."""
        placed: list[Path] = []
        try:
            for tmp, destination, replace in self.pending:
                if tmp.exists():
                    _place(tmp, destination, replace)
                    if not replace:  # new files only: a replaced file cannot be brought back
                        placed.append(destination)
        except BaseException:
            for path in placed:
                path.unlink(missing_ok=True)
            raise
        finally:
            self.discard()

    def discard(self) -> None:
        """Remove the temporary files (and GDAL's ``.aux.xml`` beside them)."""
        for tmp, _, _ in self.pending:
            for leftover in (tmp, Path(f"{tmp}.aux.xml")):
                leftover.unlink(missing_ok=True)
        self.pending = []

    def __enter__(self) -> "Staging":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.discard()


def _place(tmp: Path, destination: Path, overwrite: bool) -> None:
    if os.path.lexists(destination) and not stat.S_ISREG(os.lstat(destination).st_mode):
        raise OutputError("is no longer a regular file; not replaced", destination)
    if overwrite:
        os.replace(tmp, destination)
        return
    try:
        os.link(tmp, destination)  # fails if the destination appeared meanwhile: never clobbers
    except FileExistsError:
        raise OutputExistsError("was created by someone else while georef ran; not replaced", destination) from None
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
            raise
        if os.path.lexists(destination):  # no hard links here (FAT, some network shares): check, then rename
            raise OutputExistsError("was created by someone else while georef ran; not replaced",
                                    destination) from None
        os.replace(tmp, destination)
    else:
        tmp.unlink()


@contextmanager
def atomic_path(destination: str | Path, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``destination``; rename it there only if the block succeeds."""
    with Staging(overwrite) as staging:
        yield staging.path(destination)
        staging.commit()


@contextmanager
def destination(path: str | Path, staging: Staging | None = None, replace: bool | None = None) -> Iterator[Path]:
    """The path to write for ``path``: staged for a later commit, or else written atomically on its own.

    ``replace``: see :meth:`Staging.path`.
    """
    if staging is not None:
        yield staging.path(path, replace)
        return
    with atomic_path(path, True if replace is None else replace) as tmp:
        yield tmp


class Terminated(BaseException):
    """SIGTERM arrived: unwinds like KeyboardInterrupt, so temporary files are removed."""


@contextmanager
def terminate_on_sigterm() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`Terminated` (main thread only; elsewhere a no-op)."""
    def handler(signum, frame):
        raise Terminated()

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
