"""Settings of glibc's memory allocator for a georef process.

By default glibc serves large blocks from fresh memory mappings, with a threshold it
adjusts as the process runs, and hands the free top of its heap back to the system
beyond 128 kB. The refinement allocates and frees tens of megabytes of FFT buffers
in every round, so early in a process those pages are mapped, faulted in and
returned again round after round: the first pairs a process aligns spent up to
25 ms more in the refinement than later ones (docs/benchmarks.md). Fixed thresholds
keep that memory in the process from the first pair on.

The command line applies them (:func:`configure`); a library leaves its host's
allocator alone, so Python callers who want the same set the environment
variables of :data:`SETTINGS` before starting Python.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys

log = logging.getLogger(__name__)

#: Environment variable -> (mallopt parameter, value): blocks up to 16 MB come from the heap (a batch of
#: 512 window spectra is 9 MB), and its top keeps up to 64 MB free (a round's buffers are about 30 MB).
MMAP_THRESHOLD, TRIM_THRESHOLD = "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"
SETTINGS = {
    MMAP_THRESHOLD: (-3, 16 << 20),
    TRIM_THRESHOLD: (-1, 64 << 20),
}


def configure() -> bool:
    """Apply :data:`SETTINGS` to this process and, through the environment, to the processes it starts
    (``georef batch``'s workers).

    Nothing changes where the user tuned the allocator (any ``MALLOC_*`` variable, or glibc's malloc
    tunables) or where the C library is not glibc.

    Returns:
        Whether the settings were applied.
    """
    tuned = any(name.startswith("MALLOC_") for name in os.environ)
    if tuned or "glibc.malloc" in os.environ.get("GLIBC_TUNABLES", "") or not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc (musl, for one, has no mallopt)
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    if not all(mallopt(parameter, value) for parameter, value in SETTINGS.values()):
        return False
    os.environ.update({name: str(value) for name, (_, value) in SETTINGS.items()})
    log.debug("allocator: %s", ", ".join(f"{name}={value}" for name, (_, value) in SETTINGS.items()))
    return True
