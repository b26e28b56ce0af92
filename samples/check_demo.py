"""Print the error of an aligned demo target against the known truth, in metres.

Usage: python samples/check_demo.py OUTDIR   (reads OUTDIR/aligned.tif and OUTDIR/truth.json)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import rasterio
from affine import Affine

from georef import geometry


def main(out_dir: str) -> int:
    out = Path(out_dir)
    truth = Affine(*json.loads((out / "truth.json").read_text())["geotransform"])
    with rasterio.open(out / "target.tif") as ds:
        before = geometry.mean_corner_distance(geometry.to_matrix(ds.transform), geometry.to_matrix(truth),
                                               ds.width, ds.height)
    with rasterio.open(out / "aligned.tif") as ds:
        after = geometry.mean_corner_distance(geometry.to_matrix(ds.transform), geometry.to_matrix(truth),
                                              ds.width, ds.height)
    print(f"corner error against the known truth: before {before:.1f} m, after {after:.2f} m")
    return 0 if after < 10 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "samples/demo"))
