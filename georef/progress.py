"""Stages of long work: timed, logged, and reported to whoever watches.

The pipeline runs each stage inside :meth:`Stages.stage`, which times it and
tells a :class:`Reporter`. Reporters: none (the library default), bars on a
terminal (:class:`TerminalReporter`), and one JSON object per line for
programs such as the QGIS plugin (:class:`JsonReporter`).
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO

log = logging.getLogger(__name__)


class Reporter:
    """Receives the stages of long work; the base class ignores them."""

    def start(self, stage: str, total: int | None) -> None:
        """A stage begins; ``total`` counts its steps where known."""

    def advance(self, stage: str, done: int, total: int) -> None:
        """``done`` of ``total`` steps of the stage are finished."""

    def finish(self, stage: str, seconds: float) -> None:
        """The stage ended after ``seconds``."""


class TerminalReporter(Reporter):
    """A line per stage on a terminal, with a bar for stages that count their steps.

    Args:
        stream: where to draw; bars are drawn only where it is a terminal.
    """

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream or sys.stderr
        self.bars: dict[str, object] = {}

    def start(self, stage: str, total: int | None) -> None:
        from tqdm import tqdm

        self.bars[stage] = tqdm(total=total, desc=stage, unit="step" if total else "", leave=False,
                                file=self.stream, bar_format=None if total else "{desc}...")

    def advance(self, stage: str, done: int, total: int) -> None:
        bar = self.bars.get(stage)
        if bar is not None:
            bar.update(done - bar.n)

    def finish(self, stage: str, seconds: float) -> None:
        bar = self.bars.pop(stage, None)
        if bar is not None:
            bar.close()


class JsonReporter(Reporter):
    """One JSON object per line: ``{"stage", "event": start|progress|end, "fraction", "seconds"}``.

    Args:
        stream: where to write (stderr by default); writes from threads are serialised.
    """

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream or sys.stderr
        self.lock = threading.Lock()

    def _emit(self, **event) -> None:
        with self.lock:
            self.stream.write(json.dumps(event) + "\n")
            self.stream.flush()

    def start(self, stage: str, total: int | None) -> None:
        self._emit(stage=stage, event="start", fraction=0.0)

    def advance(self, stage: str, done: int, total: int) -> None:
        self._emit(stage=stage, event="progress", fraction=round(done / max(total, 1), 4))

    def finish(self, stage: str, seconds: float) -> None:
        self._emit(stage=stage, event="end", fraction=1.0, seconds=round(seconds, 3))


class Stages:
    """Times named stages (seconds add up when a stage runs again) and reports them.

    Args:
        reporter: told of every stage; default none.
    """

    def __init__(self, reporter: Reporter | None = None) -> None:
        self.reporter = reporter or Reporter()
        self.seconds: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str, total: int | None = None) -> Iterator[Callable[[int], None]]:
        """Time and report a stage; yields ``step(done)`` to report progress through ``total`` steps."""
        self.reporter.start(name, total)
        start = time.perf_counter()
        lock = threading.Lock()
        count = [0]

        def step(n: int = 1) -> None:
            with lock:  # windows finish on several threads
                count[0] += n
                self.reporter.advance(name, count[0], total or count[0])

        try:
            yield step
        finally:
            elapsed = time.perf_counter() - start
            self.seconds[name] = self.seconds.get(name, 0.0) + elapsed
            self.reporter.finish(name, elapsed)
            log.info("%s: %.2f s", name, elapsed)
