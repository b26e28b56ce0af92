"""Cross-season training pairs with self-supervised geometry, their cached features, and batching.

A pair is two seasons of one subtile (same pixel grid). One image is moved by a
known random warp (north-up: shift, small rotation and scale, a perspective tilt
as in off-nadir views) and its brightness altered; the warp gives the true
correspondences between the two keypoint sets and the points that have none.
Features of the frozen extractor are computed once per warped variant and cached.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from georef import geometry, raster
from georef.benchmark.cases import Pair, WarpSpec, s2_seasons_pairs, warp_pixels

log = logging.getLogger(__name__)


def split_pairs(root: str | Path, tiles: list[str], pairings: list[str]) -> list[Pair]:
    """Season pairs of the given tiles only (training and validation never share a tile)."""
    seasons = [tuple(p.split(":")) for p in pairings]
    return s2_seasons_pairs(root, seasons, tiles)


def to_gray(png: Path) -> np.ndarray:
    """An s2-seasons PNG as the core normalises images for matching: (H, W) float32 in [0, 1]."""
    data = cv2.imread(str(png), cv2.IMREAD_COLOR)[:, :, ::-1].transpose(2, 0, 1)
    return raster.normalise(data, np.ones(data.shape[1:], bool))


def photometric(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random gain, offset, gamma and noise: other sun, other haze, other sensor noise."""
    out = image * rng.uniform(0.7, 1.3) + rng.uniform(-0.1, 0.1)
    out = np.clip(out, 0, 1) ** rng.uniform(0.7, 1.4)
    out = out + rng.normal(0, rng.uniform(0, 0.02), out.shape)
    return np.clip(out, 0, 1).astype(np.float32)


def ground_truth(kpts0: np.ndarray, kpts1: np.ndarray, warp: np.ndarray, shape1: tuple[int, int],
                 shape0: tuple[int, int], match_px: float, unmatched_px: float):
    """True matches and unmatchable points from the warp (image 0 raster -> image 1 raster).

    Args:
        kpts0, kpts1: (N, 2), (M, 2) index coordinates.

    Returns:
        (K, 2) index pairs (mutual nearest within ``match_px``), (N,) and (M,) bool unmatchable flags.
    """
    c = geometry.PIXEL_CENTRE
    p0 = geometry.apply(warp, kpts0 + c) - c
    p1 = geometry.apply(np.linalg.inv(warp), kpts1 + c) - c
    dist = np.linalg.norm(p0[:, None] - kpts1[None], axis=2)  # (N, M) in image 1
    nn01, nn10 = dist.argmin(1), dist.argmin(0)
    mutual = nn10[nn01] == np.arange(len(kpts0))
    close = dist[np.arange(len(kpts0)), nn01] <= match_px
    i0 = np.flatnonzero(mutual & close)
    matches = np.stack([i0, nn01[i0]], 1)

    def outside(points, shape):
        h, w = shape
        return (points[:, 0] < 0) | (points[:, 1] < 0) | (points[:, 0] > w - 1) | (points[:, 1] > h - 1)

    unmatched0 = (dist.min(1) > unmatched_px) | outside(p0, shape1)
    unmatched1 = (dist.min(0) > unmatched_px) | outside(p1, shape0)
    unmatched0[matches[:, 0]] = False
    unmatched1[matches[:, 1]] = False
    return matches, unmatched0, unmatched1


@dataclass
class Sample:
    """Cached features of one warped pair and their ground truth (tensors on CPU)."""

    features0: dict[str, torch.Tensor]
    features1: dict[str, torch.Tensor]
    size0: tuple[int, int]
    size1: tuple[int, int]
    matches: torch.Tensor  # (K, 2) int64
    unmatched0: torch.Tensor  # (N,) bool
    unmatched1: torch.Tensor  # (M,) bool


def build_samples(pairs: list[Pair], features, config, cache_dir: Path, progress: bool = True) -> list[Sample]:
    """Warp, augment and extract once per variant; reuse the cache when the settings are unchanged."""
    key = json.dumps({k: getattr(config, k) for k in ("matcher", "weights", "variants", "max_keypoints",
                      "max_shift_px", "max_rotation_deg", "max_scale", "max_perspective", "photometric",
                      "match_px", "unmatched_px", "seed")} | {"pairs": [p.name for p in pairs]}, sort_keys=True)
    path = cache_dir / f"samples-{hashlib.sha256(key.encode()).hexdigest()[:16]}.pt"
    if path.is_file():
        log.info("features from the cache %s", path)
        # Tensors and plain containers only: a tampered cache cannot run code.
        return [Sample(**fields) for fields in torch.load(path, weights_only=True)]
    spec = WarpSpec(config.max_shift_px, config.max_rotation_deg, config.max_scale, config.max_perspective)
    rng = np.random.default_rng(config.seed)
    samples = []
    for pair in tqdm(pairs, desc="features", unit="pair", disable=not progress):
        image0, image1 = to_gray(pair.target_png), to_gray(pair.reference_png)
        f0 = features(image0)
        for _ in range(config.variants):
            h, w = image1.shape
            warp = spec.draw(rng, w, h)
            moved, _ = warp_pixels(image1[None], warp)
            moved = moved[0]
            if config.photometric:
                moved = photometric(moved, rng)
            f1 = features(moved)
            matches, un0, un1 = ground_truth(f0["keypoints"].numpy().astype(np.float64),
                                             f1["keypoints"].numpy().astype(np.float64), warp, moved.shape,
                                             image0.shape, config.match_px, config.unmatched_px)
            samples.append(Sample(f0, f1, image0.shape[::-1], moved.shape[::-1], torch.from_numpy(matches),
                                  torch.from_numpy(un0), torch.from_numpy(un1)))
    cache_dir.mkdir(parents=True, exist_ok=True)
    torch.save([dataclasses.asdict(s) for s in samples], path)
    return samples


def collate(samples: list[Sample]) -> dict[str, torch.Tensor]:
    """Pad keypoints to the batch's largest count, with masks: the batch runs as one tensor operation."""
    n = max(len(s.features0["keypoints"]) for s in samples)
    m = max(len(s.features1["keypoints"]) for s in samples)
    b = len(samples)
    dim = samples[0].features0["descriptors"].shape[1]
    out = {
        "keypoints0": torch.zeros(b, n, 2), "keypoints1": torch.zeros(b, m, 2),
        "descriptors0": torch.zeros(b, n, dim), "descriptors1": torch.zeros(b, m, dim),
        "scores0": torch.zeros(b, n), "scores1": torch.zeros(b, m),
        "mask0": torch.zeros(b, n, dtype=torch.bool), "mask1": torch.zeros(b, m, dtype=torch.bool),
        "size0": torch.tensor([s.size0 for s in samples], dtype=torch.float32),
        "size1": torch.tensor([s.size1 for s in samples], dtype=torch.float32),
        "gt_matches": torch.zeros(b, n, m, dtype=torch.bool),
        "unmatched0": torch.zeros(b, n, dtype=torch.bool), "unmatched1": torch.zeros(b, m, dtype=torch.bool),
    }
    for i, s in enumerate(samples):
        for side, f in (("0", s.features0), ("1", s.features1)):
            k = len(f["keypoints"])
            out["keypoints" + side][i, :k] = f["keypoints"]
            out["descriptors" + side][i, :k] = f["descriptors"]
            out["scores" + side][i, :k] = f["scores"]
            out["mask" + side][i, :k] = True
        out["gt_matches"][i, s.matches[:, 0], s.matches[:, 1]] = True
        out["unmatched0"][i, : len(s.unmatched0)] = s.unmatched0
        out["unmatched1"][i, : len(s.unmatched1)] = s.unmatched1
    return out
