"""Installing the georef core into a virtual environment of its own, from the wheel bundled in the plugin.

The core runs in a Python of its own (see :mod:`bridge`): a venv made with a
system Python 3.11+, never QGIS's, holding torch and the core wheel that
``qgis_plugin/build.py`` put in the plugin zip. Qt-free, so it is easy to test;
:func:`task.install_task` runs it in the background.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .bridge import Canceled, command, core_version, stream_lines

WHEELS = Path(__file__).resolve().parent / "wheels"
DISTRIBUTION = "autogeoref"  # the PyPI name; the import and the command are georef
TORCH = "torch==2.13.0"
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"  # PyPI's Linux and Windows torch is the CUDA build
MIN_PYTHON = (3, 11)
DEFAULT_WEIGHTS = ("xfeat",)  # the default matcher's, so that the first alignment needs no download

#: Share of the whole install taken by each step: the progress bar advances by these.
STEPS = {"environment": 0.05, "pip": 0.03, "torch": 0.42, "core": 0.4, "weights": 0.05, "check": 0.05}


class InstallError(Exception):
    """A step of the install failed; the message names the step, pip's error and the log."""


@dataclass(frozen=True)
class InstallOptions:
    """Where and how to install the core.

    Attributes:
        env_dir: the virtual environment to create, repair or upgrade.
        torch_build: ``"cpu"`` (any machine) or ``"gpu"`` (PyPI's CUDA build on Linux).
        wheel_folder: offline install: every package comes from this folder of wheels, no index.
        index_url: a package index used instead of pip's configured one.
        base_python: the Python 3.11+ that makes the venv; found on the system if None.
    """

    env_dir: Path
    torch_build: str = "cpu"
    wheel_folder: str | None = None
    index_url: str | None = None
    base_python: str | None = None

    @property
    def log_path(self) -> Path:
        return self.env_dir.parent / "install.log"


@dataclass(frozen=True)
class InstallResult:
    """What the install did: ``action`` is installed, repaired, upgraded or unchanged."""

    python: str
    version: str
    action: str


def bundled_wheel(folder: Path = WHEELS) -> Path:
    """The core wheel inside the plugin.

    Raises:
        InstallError: the plugin holds none (it was not built with ``qgis_plugin/build.py``) or several.
    """
    wheels = sorted(folder.glob(f"{DISTRIBUTION}-*.whl"))
    if len(wheels) != 1:
        raise InstallError(f"the plugin holds {len(wheels)} georef core wheels in {folder}, expected 1: "
                           "install the plugin from the zip made by qgis_plugin/build.py")
    return wheels[0]


def wheel_version(wheel: Path) -> str:
    return wheel.name.split("-")[1]


def env_python(env_dir: Path) -> Path:
    return env_dir / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def find_base_python(preferred: str | None = None) -> str:
    """A Python 3.11+ able to make a venv: ``preferred``, else the system's ``python3`` (newest first).

    Raises:
        InstallError: none found, with what was tried.
    """
    names = ["python3.13", "python3.12", "python3.11", "python3"] + (["py"] if os.name == "nt" else [])
    fixed = ["/usr/bin/python3", "/usr/local/bin/python3", "/opt/homebrew/bin/python3",
             "/Library/Frameworks/Python.framework/Versions/Current/bin/python3"]
    if preferred and not Path(preferred).is_file():
        raise InstallError(f"the chosen Python {preferred} does not exist")
    candidates = [preferred] if preferred else [shutil.which(n) for n in names] + fixed
    tried = []
    for python in dict.fromkeys(filter(None, candidates)):
        if not Path(python).is_file():
            continue
        tried.append(python)
        probe = "import sys, venv, ensurepip; print(*sys.version_info[:2])"
        try:
            out = subprocess.run([python, "-I", "-c", probe], capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if out.returncode == 0 and tuple(map(int, out.stdout.split())) >= MIN_PYTHON:
            return python
    raise InstallError(f"no Python {MIN_PYTHON[0]}.{MIN_PYTHON[1]} or newer with venv found "
                       f"(tried: {', '.join(tried) or 'none on the system'}): install python3 "
                       "(and python3-venv on Debian or Ubuntu) or choose a Python in the install dialog")


class PipProgress:
    """The done fraction of one pip command, from its output lines.

    Downloads report ``Progress N of M`` (pip's raw progress bar); every package
    collected moves the estimate on, and installing takes the last fifth.
    """

    def __init__(self) -> None:
        self.packages = 0
        self.download = 0.0
        self.installing = False

    def feed(self, line: str) -> float:
        if line.startswith(("Collecting ", "Processing ", "Requirement already satisfied")):
            self.packages += 1
            self.download = 0.0
        elif match := re.match(r"Progress (\d+) of (\d+)", line):
            self.download = int(match[1]) / max(int(match[2]), 1)
        elif line.startswith("Installing collected packages"):
            self.installing = True
        if self.installing:
            return 0.8
        return 0.8 * (1 - 0.85 ** max(self.packages - 1 + self.download, 0))


class Installer:
    """Creates, repairs or upgrades the core's environment.

    Args:
        options: where and how.
        log: told every line of output (pip's, venv's), and the steps.
        progress: told the percentage done (0-100).
        is_canceled: polled; true stops the running command.
    """

    def __init__(self, options: InstallOptions, log: Callable[[str], None] = lambda line: None,
                 progress: Callable[[float], None] = lambda p: None,
                 is_canceled: Callable[[], bool] = lambda: False) -> None:
        self.options = options
        self.log = log
        self.progress = progress
        self.is_canceled = is_canceled
        self.done = 0.0
        self.logfile = None

    def run(self) -> InstallResult:
        """Install; a failed first install removes the environment it made.

        Raises:
            InstallError: a step failed; the message says which, with pip's last error and the log's path.
            Canceled: ``is_canceled()`` turned true; a first install's environment is removed.
        """
        if self.options.wheel_folder and not Path(self.options.wheel_folder).is_dir():
            raise InstallError(f"the folder of wheels {self.options.wheel_folder} does not exist")
        wheel = bundled_wheel()
        version = wheel_version(wheel)
        python = env_python(self.options.env_dir)
        before = core_version(python) if python.is_file() else None
        if before == version:
            self.progress(100.0)
            return InstallResult(str(python), version, "unchanged")
        created = not self.options.env_dir.exists()
        self.options.log_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with open(self.options.log_path, "w", encoding="utf-8") as self.logfile:
                self._install(wheel, python, version)
        except (InstallError, Canceled):
            if created:
                shutil.rmtree(self.options.env_dir, ignore_errors=True)
            raise
        action = "installed" if created else "repaired" if before is None else "upgraded"
        self.progress(100.0)
        return InstallResult(str(python), version, action)

    def _install(self, wheel: Path, python: Path, version: str) -> None:
        if not (python.is_file() and self._runs(python)):
            base = find_base_python(self.options.base_python)
            self._step("environment", [base, "-I", "-m", "venv", "--clear", str(self.options.env_dir)])
        else:
            self._advance("environment")
        pip = [str(python), "-I", "-m", "pip", "install", "--disable-pip-version-check", *self._sources()]
        if self.options.wheel_folder:
            self._advance("pip")
        else:  # a pip that reports download progress (24.1+); the one the venv brings may be older
            self._step("pip", [*pip, "--upgrade", "pip>=24.1"], fatal=False)
        progress_bar = ["--progress-bar", "raw"] if self._pip_reports_progress(python) else []
        self._step("torch", [*pip, *progress_bar, *self._torch()])
        # The core's own files replaced (a repair), then whatever it needs that is missing.
        self._step("core", [*pip, *progress_bar, "--force-reinstall", "--no-deps", str(wheel)], share=0.1)
        self._step("core", [*pip, *progress_bar, str(wheel)], share=0.9)
        self._step("weights", command(python, "weights", "fetch", *DEFAULT_WEIGHTS))
        found = core_version(python)
        if found != version:
            raise InstallError(f"checking the core failed: {python} -m georef --version gave {found}, "
                               f"expected {version}; log: {self.options.log_path}")
        self._advance("check")

    def _sources(self) -> list[str]:
        if self.options.wheel_folder:
            return ["--no-index", "--find-links", self.options.wheel_folder]
        return ["--index-url", self.options.index_url] if self.options.index_url else []

    def _pip_env(self) -> dict:
        """The environment of every step: the sources also for commands that call pip themselves (the
        weights come from PyPI wheels), without QGIS's own Python settings."""
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}  # QGIS's
        if self.options.wheel_folder:
            env.update(PIP_NO_INDEX="1", PIP_FIND_LINKS=self.options.wheel_folder)
        elif self.options.index_url:
            env["PIP_INDEX_URL"] = self.options.index_url
        return env

    def _torch(self) -> list[str]:
        # The CPU build has its own index; offline, the folder holds whichever build the user put there.
        if self.options.torch_build == "cpu" and sys.platform != "darwin" and not self.options.wheel_folder:
            return ["--extra-index-url", TORCH_CPU_INDEX, TORCH + "+cpu"]
        return [TORCH]

    @staticmethod
    def _runs(python: Path) -> bool:
        try:
            return subprocess.run([str(python), "-I", "-c", "pass"], capture_output=True, timeout=60).returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            return False

    @staticmethod
    def _pip_reports_progress(python: Path) -> bool:
        out = subprocess.run([str(python), "-I", "-m", "pip", "--version"], capture_output=True, text=True)
        found = re.match(r"pip (\d+)\.(\d+)", out.stdout)
        return bool(found) and (int(found[1]), int(found[2])) >= (24, 1)

    def _advance(self, step: str, share: float = 1.0) -> None:
        self.done += STEPS[step] * share
        self.progress(100.0 * self.done)

    def _say(self, line: str) -> None:
        self.logfile.write(line + "\n")
        self.logfile.flush()
        self.log(line)

    def _step(self, step: str, cmd: list[str], share: float = 1.0, fatal: bool = True) -> None:
        """Run one command, its output line by line into the log and the progress bar."""
        self._say(f"[{step}] {' '.join(cmd)}")
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
                                env=self._pip_env())
        tracker, errors = PipProgress(), []
        for raw in stream_lines(proc, proc.stdout, self.is_canceled):
            line = raw.rstrip()
            if line.startswith("ERROR") or "error:" in line.lower():
                errors.append(line)
            if not line.startswith("Progress "):  # pip's raw progress goes to the bar only
                self._say(line)
            self.progress(100.0 * (self.done + STEPS[step] * share * tracker.feed(line)))
        if proc.returncode != 0:
            if fatal:
                reason = errors[-1] if errors else f"exit code {proc.returncode}"
                raise InstallError(f"{step} step failed: {reason}; log: {self.options.log_path}")
            self._say(f"[{step}] failed, going on without it")
        self._advance(step, share)
