"""The bridge to the georef core, which runs as a subprocess of its own Python.

Running the core out of process avoids the numpy, Qt and attrs clashes between
QGIS's Python and a modern scientific stack; results come back as the core's
JSON report. Qt-free, so it is easy to test.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import queue
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

SETTINGS_KEY = "georef/python"
INSTALL_HINT = (
    "the georef core is not installed: install it from Raster > georef > Install the georef core…, or "
    "install the autogeoref package (not georef, another project on PyPI) into a Python environment of its "
    "own and set that environment's python in GEOREF_PYTHON"
)


class CoreError(Exception):
    """An expected failure of the core: bad input (exit 2) or a refused alignment (exit 3)."""


class CoreCrash(Exception):
    """An unexpected failure of the core; carries its stderr (with the traceback)."""


class Canceled(Exception):
    """The user canceled the run."""


@dataclass
class Result:
    """What an alignment produced."""

    output: str
    gcps: str | None
    report: dict


def command(python: str, *args: str) -> list[str]:
    """``python -I -m georef ARGS``: isolated, so the core runs from its own environment only, never
    from QGIS's PYTHONPATH or a ``georef`` folder in the working directory."""
    return [str(python), "-I", "-m", "georef", *args]


def find_python(configured: str | None = None) -> str:
    """The Python of the georef core: the setting, ``GEOREF_PYTHON``, or a python3 on PATH whose georef answers.

    Raises:
        CoreError: none found, with how to install it.
    """
    candidates = [configured, os.environ.get("GEOREF_PYTHON"), shutil.which("python3")]
    for python in filter(None, candidates):
        if Path(python).is_file() and core_version(python) is not None:
            return python
    raise CoreError(INSTALL_HINT)


def core_version(python: str | Path) -> str | None:
    """The version the core at ``python`` reports (``python -I -m georef --version``), or None if it does not run."""
    try:
        out = subprocess.run(command(python, "--version"), capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.split()[-1] if out.returncode == 0 and out.stdout.strip() else None


_LISTINGS: dict[str, dict] = {}


def core_listing(python: str) -> dict:
    """The matchers and models the core offers, and its defaults (``georef matchers --json``), cached per core.

    Raises:
        CoreError: the core could not list them.
    """
    if python not in _LISTINGS:
        try:
            out = subprocess.run(command(python, "matchers", "--json"), capture_output=True, text=True, timeout=120)
            _LISTINGS[python] = json.loads(out.stdout)
        except (OSError, subprocess.TimeoutExpired, json.JSONDecodeError) as exc:
            raise CoreError(f"the georef core at {python} could not list its matchers ({exc})") from None
    return _LISTINGS[python]


#: Typical share of an alignment's time in each stage of the core: the task bar advances by these.
STAGE_WEIGHTS = {"read": 0.1, "correlate": 0.05, "match": 0.3, "fit": 0.05, "refine": 0.2, "windows": 0.4,
                 "write": 0.1, "pairs": 1.0}


class StageProgress:
    """The percentage done, from the core's ``--progress-json`` events (one JSON object per line).

    Stages that have ended count whole; the running one by its fraction. The total is the
    weight of the stages seen plus those an alignment usually still has, so the bar never
    runs backwards and reaches 100 only when the core exits.
    """

    def __init__(self) -> None:
        self.ended: dict[str, float] = {}
        self.stage: str | None = None
        self.fraction = 0.0
        self.shown = 0.0

    def feed(self, line: str) -> bool:
        """Take one line of the core's stderr; True where it was a progress event."""
        try:
            event = json.loads(line)
        except ValueError:
            return False
        if not isinstance(event, dict) or "stage" not in event or "event" not in event:
            return False
        if event["event"] == "end":
            self.ended[event["stage"]] = STAGE_WEIGHTS.get(event["stage"], 0.1)
            self.stage, self.fraction = None, 0.0
        else:
            self.stage, self.fraction = event["stage"], float(event.get("fraction") or 0.0)
        return True

    def percent(self) -> float:
        done = sum(self.ended.values())
        running = STAGE_WEIGHTS.get(self.stage, 0.1) if self.stage else 0.0
        remaining = max(sum(STAGE_WEIGHTS[s] for s in ("read", "match", "refine", "write")) - done - running, 0.1)
        estimate = min(99.0, 100.0 * (done + running * self.fraction) / (done + running + remaining))
        self.shown = max(self.shown, estimate)  # an unexpected stage lowers the estimate, never the bar
        return self.shown


def stream_lines(proc: subprocess.Popen, stream, is_canceled: Callable[[], bool]) -> Iterator[str]:
    """The lines of a running process's ``stream`` as they come, until it exits.

    Raises:
        Canceled: ``is_canceled()`` turned true (polled even while the process is silent); the
            process was interrupted with SIGINT (the core and pip clean up on it), killed if it
            did not stop within 10 s. A process that had already finished its work (exit code 0)
            is not canceled: its result stands.
    """
    lines: queue.Queue = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(line) for line in stream], daemon=True)
    reader.start()
    while proc.poll() is None or reader.is_alive() or not lines.empty():
        if is_canceled():
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            if proc.returncode != 0:
                raise Canceled("canceled")
        try:
            yield lines.get(timeout=0.1)
        except queue.Empty:
            continue
    proc.wait()


def run_core(python: str, args: list[str], is_canceled: Callable[[], bool] = lambda: False,
             progress: Callable[[float], None] = lambda p: None,
             stage: Callable[[str], None] = lambda name: None) -> str:
    """Run ``python -m georef ARGS``; return its stderr (without progress events).

    Args:
        python, args: the core's interpreter and command line (``--progress-json`` where the
            command takes it: the bar then follows the core's stages).
        is_canceled: polled; true interrupts the core.
        progress: told the percentage done.
        stage: told the name of each stage as it starts.

    Raises:
        Canceled: ``is_canceled()`` turned true; the core was interrupted (it
            removes its temporary files on SIGINT, so nothing half-written stays).
        CoreError: exit code 2 or 3, with the core's one-line reason.
        CoreCrash: any other failure, with the core's stderr.
    """
    if is_canceled():  # before the core starts: until it sets its handler, it would ignore the SIGINT
        raise Canceled("canceled")
    proc = subprocess.Popen(command(python, *args), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, bufsize=1)
    tracker, kept = StageProgress(), []
    for line in stream_lines(proc, proc.stderr, is_canceled):
        started = tracker.stage
        if tracker.feed(line):
            if tracker.stage and tracker.stage != started:
                stage(tracker.stage)
            progress(tracker.percent())
        else:
            kept.append(line)
    stderr = "".join(kept)
    if proc.returncode in (2, 3):
        reason = [line for line in stderr.splitlines() if line.startswith("georef: error:")]
        raise CoreError(reason[-1][len("georef: error: "):] if reason else stderr.strip().splitlines()[-1])
    if proc.returncode != 0:
        raise CoreCrash(stderr)
    return stderr


def align(python: str, target: str, reference: str, output: str, matcher: str = "xfeat", model: str = "auto",
          gcp_layer: str | None = None, is_canceled: Callable[[], bool] = lambda: False,
          progress: Callable[[float], None] = lambda p: None, stage: Callable[[str], None] = lambda name: None,
          options: Sequence[str] = ()) -> Result:
    """Align ``target`` onto ``reference``; write ``output`` and, if asked, a GCP GeoPackage. ``options``: more
    of ``georef align``'s options, as on its command line (``["--max-shift", "2500"]``)."""
    with tempfile.TemporaryDirectory(prefix="georef-") as tmp:
        report_path = Path(tmp) / "report.json"
        run_core(python, ["-q", "align", target, "--ref", reference, "-o", output, "--report", str(report_path),
                          "--matcher", matcher, "--model", model, "--overwrite", "--progress-json", *options],
                 is_canceled, progress, stage)
        report = json.loads(report_path.read_text())
        if gcp_layer:
            run_core(python, ["-q", "gcps", str(report_path), "--to", gcp_layer, "--overwrite"], is_canceled)
    return Result(output, gcp_layer, report)
