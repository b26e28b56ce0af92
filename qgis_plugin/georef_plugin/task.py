"""The background task that runs an alignment without blocking QGIS."""

from __future__ import annotations

import traceback

from qgis.core import Qgis, QgsMessageLog, QgsTask

from . import bridge

LOG_TAG = "georef"


class AlignTask(QgsTask):
    """Runs :func:`bridge.align` in a QgsTask; reports to the message bar when done.

    Args:
        params: keyword arguments of :func:`bridge.align` (without the callbacks).
        on_success: called on the main thread with the :class:`bridge.Result`.
        on_failure: called on the main thread with a one-line reason (expected failures).
    """

    def __init__(self, params: dict, on_success, on_failure) -> None:
        super().__init__("georef: auto-georeference", QgsTask.CanCancel)
        self.params = params
        self.on_success = on_success
        self.on_failure = on_failure
        self.result: bridge.Result | None = None
        self.reason: str | None = None
        # Kept on the Python side: QGIS deletes the C++ task once it has finished.
        self.succeeded: bool | None = None

    def run(self) -> bool:
        try:
            self.result = bridge.align(**self.params, is_canceled=self.isCanceled, progress=self.setProgress)
            return True
        except bridge.Canceled:
            self.reason = "canceled"
        except bridge.CoreError as exc:
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
                self.on_failure("unexpected error while adding the layers; see the log")
        else:
            self.on_failure(self.reason)
