"""Run AROSICS's global co-registration on benchmark cases; executed by AROSICS's own Python.

AROSICS needs GDAL's Python bindings built against the system GDAL and numpy < 2,
which do not live beside georef's stack; the benchmark runs this file in that
environment (``bash tools/install_arosics.sh`` makes one) and reads its JSON.
It imports nothing of georef.

Usage: python arosics_driver.py JOBS.json RESULTS.json
JOBS: [{"name", "target", "reference", "output", "band", "window", "max_shift", "nodata"}, ...]
RESULTS: [{"name", "success", "geotransform" (GDAL order) or null, "seconds", "error"}, ...]
"""

from __future__ import annotations

import json
import sys
import time
import warnings


def run(job: dict) -> dict:
    from arosics import COREG

    start = time.perf_counter()
    try:
        coreg = COREG(job["reference"], job["target"], path_out=job["output"], fmt_out="GTIFF",
                      r_b4match=job["band"], s_b4match=job["band"], ws=(job["window"], job["window"]),
                      max_shift=job["max_shift"], nodata=tuple(job["nodata"]), q=True, ignore_errors=True)
        corrected = coreg.correct_shifts()
        success = bool(coreg.success)
        geotransform = [float(v) for v in corrected["updated geotransform"]] if success else None
        error = None if success else "AROSICS reported no valid shift"
    except Exception as exc:  # a failed case is a result, not a crash of the whole run
        success, geotransform, error = False, None, f"{type(exc).__name__}: {exc}"
    return {"name": job["name"], "success": success, "geotransform": geotransform,
            "seconds": time.perf_counter() - start, "error": error}


def main(jobs_path: str, results_path: str) -> int:
    warnings.simplefilter("ignore")
    jobs = json.loads(open(jobs_path).read())
    results = [run(job) for job in jobs]
    with open(results_path, "w") as f:
        json.dump(results, f)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
