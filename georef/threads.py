"""How many threads torch uses.

torch's default (one thread per core, busy-waiting between parallel regions)
makes the pipeline several times slower when other processes share the cores.
georef therefore chooses: the number given to :func:`request` (``--threads``),
else ``OMP_NUM_THREADS`` where the user set it, else :data:`DEFAULT_THREADS`
capped at the cores this process may use. The choice is applied when a matcher
is created, so choosing costs nothing where no model runs.
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)

#: Threads when nothing else says: see docs/benchmarks.md for default against one thread.
DEFAULT_THREADS = 2

_requested: int | None = None
_applied: int | None = None


def available_cores() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return os.cpu_count() or 1


def request(threads: int | None) -> None:
    """Ask for ``threads`` intra-op threads (None: the default); applied with the next matcher."""
    global _requested
    _requested = threads


def chosen() -> int:
    """The thread count :func:`apply` sets."""
    env = os.environ.get("OMP_NUM_THREADS", "")
    if _requested is not None:
        return _requested
    if env.isdigit() and int(env) > 0:
        return int(env)
    return max(1, min(DEFAULT_THREADS, available_cores()))


def apply() -> int:
    """Set torch's intra-op thread count (once per change); returns the count."""
    global _applied
    threads = chosen()
    if threads != _applied:
        import torch

        torch.set_num_threads(threads)
        _applied = threads
        log.debug("torch uses %d threads", threads)
    return threads
