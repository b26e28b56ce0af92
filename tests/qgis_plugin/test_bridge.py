"""The bridge follows the core's own progress (``--progress-json``), not a clock."""

from __future__ import annotations

from georef_plugin import bridge


def test_stage_progress_never_runs_backwards():
    tracker = bridge.StageProgress()
    events = ['{"stage": "read", "event": "start", "fraction": 0.0}', "georef: WARNING: a log line",
              '{"stage": "read", "event": "end", "fraction": 1.0, "seconds": 0.1}',
              '{"stage": "windows", "event": "start", "fraction": 0.0}',
              '{"stage": "windows", "event": "progress", "fraction": 0.5}',
              '{"stage": "windows", "event": "end", "fraction": 1.0, "seconds": 2.0}',
              '{"stage": "write", "event": "start", "fraction": 0.0}']
    seen = []
    for line in events:
        if tracker.feed(line):
            seen.append(tracker.percent())
    assert not tracker.feed("georef: WARNING: a log line") and not tracker.feed("[1, 2]")
    assert seen == sorted(seen) and seen[0] == 0 and 0 < seen[-1] < 100


def test_align_reports_the_core_stages(core_python, real_case, tmp_path):
    stages, percents = [], []
    result = bridge.align(core_python, real_case["target"], real_case["reference"], str(tmp_path / "out.tif"),
                          progress=percents.append, stage=stages.append)
    assert result.report["status"] == "passed"
    assert stages[0] == "read" and "write" in stages and "refine" in stages
    assert percents == sorted(percents) and len(set(percents)) >= 4 and percents[-1] < 100


def test_a_cancel_stops_a_running_process_but_not_a_finished_one():
    import subprocess
    import sys
    import time

    import pytest

    def run(code):
        return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)

    busy = run("import time; print('started', flush=True); time.sleep(60)")
    start = time.monotonic()
    with pytest.raises(bridge.Canceled):
        for _ in bridge.stream_lines(busy, busy.stdout, lambda: True):
            pass
    assert busy.returncode != 0 and time.monotonic() - start < 15
    # A cancel that comes after the work is done (the process exited 0) leaves its result alone.
    done = run("print('written')")
    done.wait()
    assert list(bridge.stream_lines(done, done.stdout, lambda: True)) == ["written\n"]


def test_a_cancel_before_the_core_starts_starts_nothing(tmp_path):
    # Until the core sets its SIGINT handler it ignores a SIGINT inherited as ignored (a parent started in
    # the background): a cancel that came before the start must not start it.
    import pytest

    marker, python = tmp_path / "started", tmp_path / "python"
    python.write_text(f"#!/bin/sh\ntouch {marker}\n")
    python.chmod(0o755)
    with pytest.raises(bridge.Canceled):
        bridge.run_core(str(python), ["--version"], lambda: True)
    assert not marker.exists()
