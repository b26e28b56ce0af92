"""Benchmark regimes: how a case departs from the tuned one (512 px, 10 m, whole overlap, masked borders).

Each regime changes the pixels or the extent of a warp case and keeps its truth
exact: a coarser target or reference (area-averaged by whole factors), a crop
(small targets), opaque cloud blobs (not masked), a reference that covers only
part of the target (partial overlap) or lies in another CRS, and the warped
target's empty corners written as an internal mask, as declared nodata or as
plain zeros.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from georef import geometry

#: How the warped target's empty corners are written.
BORDERS = ("mask", "nodata", "zero")


@dataclass(frozen=True)
class Regime:
    """Departures from the tuned regime; the defaults change nothing.

    Attributes:
        target_factor: the target area-averaged by this whole factor (2: 20 m, 3: 30 m, 6: 60 m pixels).
        reference_factor: the same for the reference.
        crop: the target cut to a window of this side (10 m pixels, before averaging); 0 keeps it whole.
        occlusion: (low, high) share of the target covered by opaque bright clouds, drawn per case.
        overlap: (low, high) share of the target's footprint that the reference covers, drawn per case.
        border: how the empty corners are written, one of :data:`BORDERS`.
        reference_crs: the reference reprojected to this CRS (cubic); None keeps the tile's.
    """

    target_factor: int = 1
    reference_factor: int = 1
    crop: int = 0
    occlusion: tuple[float, float] | None = None
    overlap: tuple[float, float] | None = None
    border: str = "mask"
    reference_crs: str | None = None

    @property
    def tag(self) -> str:
        """A short name for file names; empty for the tuned regime."""
        parts = []
        if self.target_factor > 1:
            parts.append(f"t{self.target_factor}")
        if self.reference_factor > 1:
            parts.append(f"r{self.reference_factor}")
        if self.crop:
            parts.append(f"c{self.crop}")
        if self.occlusion:
            parts.append("occ{:g}-{:g}".format(*self.occlusion))
        if self.overlap:
            parts.append("ovl{:g}-{:g}".format(*self.overlap))
        if self.border != "mask":
            parts.append(self.border)
        if self.reference_crs:
            parts.append("in_" + "".join(c if c.isalnum() else "_" for c in self.reference_crs))
        return "_".join(parts)


def average(data: np.ndarray, valid: np.ndarray | None, factor: int) -> tuple[np.ndarray, np.ndarray | None]:
    """(B, H, W) data area-averaged by a whole factor (edges cut to a multiple); a pixel is valid if all of it is."""
    if factor == 1:
        return data, valid
    b, h, w = data.shape
    h, w = h - h % factor, w - w % factor
    blocks = data[:, :h, :w].reshape(b, h // factor, factor, w // factor, factor).astype(np.float64)
    out = np.round(blocks.mean(axis=(2, 4))).astype(data.dtype)
    if valid is None:
        return out, None
    return out, valid[:h, :w].reshape(h // factor, factor, w // factor, factor).all(axis=(1, 3))


def add_clouds(data: np.ndarray, valid: np.ndarray, cover: float, rng: np.random.Generator) -> np.ndarray:
    """Opaque, bright, soft-edged cloud blobs over ``cover`` (share) of the valid pixels; the pixels are replaced."""
    import cv2

    _, h, w = data.shape
    field = np.zeros((h, w), np.float32)
    for _ in range(rng.integers(2, 7)):  # a few clouds, each a sum of Gaussian puffs
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        for _ in range(rng.integers(3, 9)):
            y, x = cy + rng.normal(0, h / 10), cx + rng.normal(0, w / 10)
            s = rng.uniform(h / 20, h / 8)
            yy, xx = np.ogrid[:h, :w]
            field += np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / (2 * s * s)).astype(np.float32)
    level = np.quantile(field[valid], 1 - cover) if valid.any() else field.max()
    edge = 0.15 * max(float(field.max() - level), 1e-6)
    alpha = np.clip((field - level) / edge + 0.5, 0, 1)[None]  # soft over a few pixels, then opaque
    texture = cv2.GaussianBlur(rng.normal(0, 6, (h, w)).astype(np.float32), (0, 0), 3)
    cloud = np.clip(235 + texture, 0, 255)[None]
    return (data * (1 - alpha) + cloud * alpha).round().astype(data.dtype)


def crop_window(valid: np.ndarray, side: int, rng: np.random.Generator) -> tuple[int, int]:
    """(column, row) of a ``side`` px window, drawn among those that are mostly valid."""
    h, w = valid.shape
    for _ in range(50):
        col, row = int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1))
        if valid[row:row + side, col:col + side].mean() > 0.9:
            return col, row
    return (w - side) // 2, (h - side) // 2


def cut_reference(shape: tuple[int, int], target_to_ref: np.ndarray, target_shape: tuple[int, int],
                  share: float, rng: np.random.Generator) -> tuple[slice, slice, float]:
    """Rows and columns of the reference to keep so that it covers about ``share`` of the target's footprint.

    One or two sides of the reference are cut. Returns the slices and the share actually covered.

    Args:
        shape: reference (height, width).
        target_to_ref: (3, 3) target raster -> reference raster coordinates.
        target_shape: target (height, width).
    """
    h, w = shape
    th, tw = target_shape
    points = geometry.apply(target_to_ref, geometry.grid_points(tw, th, 40))
    both = rng.random() < 0.5
    # Keep [lo, hi) of each cut axis; cut from a random side, by the same share on both axes where two are cut.
    keep = np.sqrt(share) if both else share
    axes = [0, 1] if both else [int(rng.integers(0, 2))]
    bounds = [[0, w], [0, h]]
    for axis in axes:
        size = (w, h)[axis]
        lo = np.quantile(points[:, axis], 1 - keep) if rng.random() < 0.5 else None
        if lo is not None:
            bounds[axis] = [int(np.clip(lo, 0, size - 8)), size]
        else:
            bounds[axis] = [0, int(np.clip(np.quantile(points[:, axis], keep), 8, size))]
    (c0, c1), (r0, r1) = bounds
    inside = (points[:, 0] >= c0) & (points[:, 0] < c1) & (points[:, 1] >= r0) & (points[:, 1] < r1)
    return slice(r0, r1), slice(c0, c1), float(inside.mean())
