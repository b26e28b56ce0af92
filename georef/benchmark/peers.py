"""Other tools run on the benchmark's cases beside georef, scored the same way: AROSICS's global mode.

AROSICS runs in an environment of its own (GDAL's Python bindings of the system,
numpy < 2): ``bash tools/install_arosics.sh`` makes one in ``.venv-arosics``;
``GEOREF_AROSICS_PYTHON`` names another. All cases go to one process, so its
start-up counts once; each case is timed inside it.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path

import numpy as np
from affine import Affine

from georef import geometry
from georef.benchmark.cases import Case
from georef.benchmark.layout import case_paths
from georef.benchmark.metrics import has_error, no_fit_error, score
from georef.errors import GeorefError

#: Environment variable naming AROSICS's Python.
AROSICS_PYTHON = "GEOREF_AROSICS_PYTHON"
#: AROSICS's settings in the comparison: global mode, a 256 px window, shifts up to 40 px, the red band.
AROSICS_WINDOW, AROSICS_MAX_SHIFT, AROSICS_BAND = 256, 40, 1
#: The setting's name in the tables: (matcher, model, threshold).
AROSICS_SETTING = ("arosics", "global", 0.0)


class PeerUnavailable(GeorefError, FileNotFoundError):
    """A peer's environment is missing or broken."""


def arosics_python() -> str:
    """The Python that runs AROSICS: ``$GEOREF_AROSICS_PYTHON``, else ``.venv-arosics`` in the working folder.

    Raises:
        PeerUnavailable: neither exists.
    """
    python = os.environ.get(AROSICS_PYTHON) or str(Path(".venv-arosics") / "bin" / "python")
    if not Path(python).is_file():
        raise PeerUnavailable("AROSICS's Python not found; make its environment with bash tools/install_arosics.sh "
                              f"(or name one in {AROSICS_PYTHON})", python)
    return python


def run_arosics(cases: list[Case], out_dir: Path, band: int = AROSICS_BAND) -> list[dict]:
    """AROSICS's global mode on every case: one ``cases.csv`` row each, scored like georef's.

    Raises:
        PeerUnavailable: AROSICS's environment is missing, or its process failed.
    """
    python = arosics_python()
    matcher, model, threshold = AROSICS_SETTING
    jobs = []
    for case in cases:
        output = case_paths(out_dir, matcher, model, threshold, case.name)[0]
        output.parent.mkdir(parents=True, exist_ok=True)
        # AROSICS guesses nodata from the corners where none is declared, and takes saturated snow (255)
        # for it: each input's own nodata is passed, else 0.
        jobs.append({"name": case.name, "target": str(case.target), "reference": str(case.reference),
                     "output": str(output), "band": band, "window": AROSICS_WINDOW, "max_shift": AROSICS_MAX_SHIFT,
                     "nodata": [_nodata(case.reference), _nodata(case.target)]})
    with tempfile.TemporaryDirectory(prefix="georef-peer-") as tmp:
        jobs_path, results_path = Path(tmp) / "jobs.json", Path(tmp) / "results.json"
        jobs_path.write_text(json.dumps(jobs))
        driver = Path(__file__).with_name("arosics_driver.py")
        proc = subprocess.run([python, str(driver), str(jobs_path), str(results_path)], capture_output=True, text=True)
        if proc.returncode != 0 or not results_path.exists():
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise PeerUnavailable(f"AROSICS failed: {last}", python)
        results = {r["name"]: r for r in json.loads(results_path.read_text())}
    return [_row(case, results[case.name]) for case in cases]


def _nodata(path: Path) -> float:
    import rasterio

    with rasterio.open(path) as ds:
        return 0.0 if ds.nodata is None else float(ds.nodata)


def _row(case: Case, result: dict) -> dict:
    matcher, model, threshold = AROSICS_SETTING
    row = {"case": case.name, "group": case.group, "matcher": matcher, "model": model, "threshold": f"{threshold:g}",
           "accepted": result["success"], "total_s": result["seconds"], "reasons": result["error"] or ""}
    if result["geotransform"] is None:
        return {**row, "status": "no-fit", "error_px": no_fit_error(case)}
    estimate = geometry.to_matrix(Affine.from_gdal(*result["geotransform"]))
    return {**row, "status": "ok" if result["success"] else "refused", **score(case, estimate)}


def paired(rows: list[dict], ours: tuple[str, str, str], peer: tuple[str, str, str], group: str) -> dict | None:
    """Cases of ``group`` that both settings accepted: median error of each, and how often ours is closer."""
    def accepted(key):
        return {r["case"]: float(r["error_px"]) for r in rows if (r["matcher"], r["model"], r["threshold"]) == key
                and r["group"] == group and r["accepted"] == "True" and has_error(r)}

    mine, theirs = accepted(ours), accepted(peer)
    both = sorted(set(mine) & set(theirs))
    if not both:
        return None
    a, b = np.array([mine[c] for c in both]), np.array([theirs[c] for c in both])
    return {"cases": len(both), "median_ours_px": float(np.median(a)), "median_peer_px": float(np.median(b)),
            "ours_closer": float(np.mean(a < b))}
