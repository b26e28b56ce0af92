"""Background tasks that run the core (an alignment, the install) without blocking QGIS."""

from __future__ import annotations

import traceback
from typing import Callable

from qgis.core import Qgis, QgsMessageLog, QgsTask

from . import bridge
from .installer import Installer, InstallError, InstallOptions

LOG_TAG = "georef"


class CoreTask(QgsTask):
    """Runs ``work(is_canceled, progress)`` in a QgsTask; reports to the main thread when done.

    Args:
        description: shown in the task manager.
        work: does the job; returns its result or raises. Expected failures
            (:class:`bridge.CoreError`, :class:`InstallError`) become the one-line reason;
            anything else is logged with its traceback.
        on_success: called on the main thread with the result.
        on_failure: called on the main thread with a one-line reason.
    """

    def __init__(self, description: str, work: Callable, on_success, on_failure) -> None:
        super().__init__(description, QgsTask.CanCancel)
        self.work = work
        self.on_success = on_success
        self.on_failure = on_failure
        self.result = None
        self.reason: str | None = None
        # Kept on the Python side: QGIS deletes the C++ task once it has finished.
        self.succeeded: bool | None = None

    def run(self) -> bool:
        try:
            self.result = self.work(self.isCanceled, self.setProgress)
            return True
        except bridge.Canceled:
            self.reason = "canceled"
        except (bridge.CoreError, InstallError) as exc:
            self.reason = str(exc)
        except bridge.CoreCrash as exc:
            self.reason = "the georef core failed; see the log"
            QgsMessageLog.logMessage(str(exc), LOG_TAG, Qgis.Critical)
        except Exception:  # noqa: BLE001 - a task must not raise; the traceback goes to the log
            self.reason = "unexpected error; see the log"
            QgsMessageLog.logMessage(traceback.format_exc(), LOG_TAG, Qgis.Critical)
        return False

    def finished(self, ok: bool) -> None:
        self.succeeded = ok
        if not ok and self.reason is None:  # canceled before run() started
            self.reason = "canceled"
        if ok:
            try:
                self.on_success(self.result)
            except Exception:  # noqa: BLE001
                QgsMessageLog.logMessage(traceback.format_exc(), LOG_TAG, Qgis.Critical)
                self.on_failure("unexpected error while handling the result; see the log")
        else:
            self.on_failure(self.reason)


def align_task(params: dict, on_success, on_failure) -> CoreTask:
    """An alignment (:func:`bridge.align` with ``params``); the result is a :class:`bridge.Result`."""
    return CoreTask("georef: auto-georeference",
                    lambda is_canceled, progress: bridge.align(**params, is_canceled=is_canceled, progress=progress),
                    on_success, on_failure)


def install_task(options: InstallOptions, configured: str | None, on_success, on_failure) -> CoreTask:
    """Installing the core (:class:`Installer`), pip's output line by line in the log panel's georef tab.

    Where it fails, the task's ``configured_runs`` says whether the ``configured`` core still answers
    (asked on the task's thread: a probe takes about a second).
    """
    def work(is_canceled, progress):
        log = lambda line: QgsMessageLog.logMessage(line, LOG_TAG, Qgis.Info)  # noqa: E731
        try:
            return Installer(options, log, progress, is_canceled).run()
        except BaseException:
            task.configured_runs = configured is None or bridge.core_version(configured) is not None
            raise

    task = CoreTask("georef: install the core", work, on_success, on_failure)
    task.configured_runs = True
    return task
