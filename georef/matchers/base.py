"""The matcher interface: two images in, matched pixel coordinates and confidences out."""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from georef import geometry
from georef.errors import WeightsUnavailable


@dataclass
class Matches:
    """Putative correspondences between two images.

    Attributes:
        points0: (N, 2) float64, x/y index coordinates in image 0 (pixel centre at 0).
        points1: (N, 2) float64, x/y index coordinates in image 1.
        confidence: (N,) float64 in [0, 1], higher is better.
        keypoints0: number of keypoints detected in image 0.
        keypoints1: number of keypoints detected in image 1.
    """

    points0: np.ndarray
    points1: np.ndarray
    confidence: np.ndarray
    keypoints0: int = 0
    keypoints1: int = 0
    extra: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.points0)

    @classmethod
    def empty(cls, keypoints0: int = 0, keypoints1: int = 0) -> "Matches":
        """No matches (too few keypoints on one side)."""
        return cls(np.zeros((0, 2)), np.zeros((0, 2)), np.zeros(0), keypoints0, keypoints1)


class Matcher(abc.ABC):
    """Finds correspondences between two single-channel images.

    Subclasses set ``name`` and implement :meth:`match`.
    """

    name: str = ""

    @abc.abstractmethod
    def match(
        self,
        image0: np.ndarray,
        image1: np.ndarray,
        valid0: np.ndarray | None = None,
        valid1: np.ndarray | None = None,
        prior: np.ndarray | None = None,
        radius: float = 8.0,
    ) -> Matches:
        """Match two images.

        Args:
            image0: (H0, W0) float32 in [0, 1].
            image1: (H1, W1) float32 in [0, 1].
            valid0: optional (H0, W0) bool; no keypoint is kept where False.
            valid1: optional (H1, W1) bool.
            prior: optional (3, 3) transform from image 0 to image 1 index
                coordinates; when given, a keypoint may only match keypoints
                within ``radius`` pixels of its predicted position (guided matching).
            radius: search radius of guided matching, pixels of image 1.

        Returns:
            The matches, in index coordinates of each image.
        """


class FeatureCache:
    """Features of the last two images seen: the guided pass matches the same images again.

    Args:
        extract: ``(image, valid) -> features``.
    """

    def __init__(self, extract) -> None:
        self.extract = extract
        self.entries: list = []

    def __call__(self, image: np.ndarray, valid: np.ndarray | None):
        for (seen_image, seen_valid), features in self.entries:
            if seen_image is image and seen_valid is valid:
                return features
        features = self.extract(image, valid)
        self.entries = [((image, valid), features), *self.entries[:1]]
        return features


def load_strict(model: torch.nn.Module, state, path: str | Path, what: str,
                optional: tuple[str, ...] = (), extra_ok: bool = False) -> torch.nn.Module:
    """Load a checkpoint's state into ``model``: every learned weight present, every shape right.

    Args:
        model: the network.
        state: the loaded checkpoint: a state dict, or ``{"state_dict": ...}`` as some releases have it.
        path: the file, for the message.
        what: the network's name, for the message.
        optional: keys the model may lack in the file (derived buffers, not learned weights).
        extra_ok: the file may hold more than the model (a release bundling the extractor).

    Raises:
        WeightsUnavailable: the file does not fit the network.
    """
    if isinstance(state, Mapping) and isinstance(state.get("state_dict"), Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping):
        raise WeightsUnavailable(f"is not a {what} checkpoint (no state dict in it)", path)
    try:
        result = model.load_state_dict(state, strict=False)
    except (RuntimeError, TypeError, AttributeError) as exc:
        raise WeightsUnavailable(f"does not fit {what} ({str(exc).strip().splitlines()[-1].strip()})", path) from None
    missing = [k for k in result.missing_keys if k not in optional]
    unexpected = [] if extra_ok else result.unexpected_keys
    if missing or unexpected:
        detail = f"{len(missing)} weights missing, e.g. {missing[0]}" if missing else \
            f"{len(unexpected)} unexpected weights, e.g. {unexpected[0]}"
        raise WeightsUnavailable(f"does not fit {what} ({detail})", path)
    return model


def keep_valid(points: np.ndarray, valid: np.ndarray | None) -> np.ndarray:
    """Boolean (N,) selecting index-coordinate points that fall on valid pixels."""
    if valid is None:
        return np.ones(len(points), dtype=bool)
    h, w = valid.shape
    cols = np.clip(np.round(points[:, 0]).astype(int), 0, w - 1)
    rows = np.clip(np.round(points[:, 1]).astype(int), 0, h - 1)
    return valid[rows, cols]


#: Rows of the similarity matrix computed at once: a chunk stays in cache, the whole matrix of two
#: 4096-keypoint images (64 MB) does not, and reducing chunks is about a third faster.
_ROWS_PER_CHUNK = 1024


def mutual_nearest(descriptors0: torch.Tensor, descriptors1: torch.Tensor, min_similarity: float = -np.inf,
                   rows_per_chunk: int = _ROWS_PER_CHUNK) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mutual nearest neighbours in descriptor similarity (dot product), computed a chunk of rows at a time.

    Args:
        descriptors0: (N0, D) float descriptors.
        descriptors1: (N1, D) float descriptors.
        min_similarity: pairs below it never match.
        rows_per_chunk: rows of the (N0, N1) similarity held at once.

    Returns:
        Indexes (M,) into both sets, and the (M,) float64 similarities.
    """
    d0, d1 = descriptors0.float(), descriptors1.float()
    best_parts, index_parts, column_best = [], [], None
    for start in range(0, len(d0), rows_per_chunk):
        sim = d0[start:start + rows_per_chunk] @ d1.T
        best, index = sim.max(dim=1)
        best_parts.append(best)
        index_parts.append(index)
        # Column maxima by amax: several times faster than argmax over columns (a strided reduction on CPU).
        chunk_best = sim.amax(dim=0)
        column_best = chunk_best if column_best is None else torch.maximum(column_best, chunk_best)
    if column_best is None or len(d1) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    best, idx01 = torch.cat(best_parts), torch.cat(index_parts)
    # A row's best is mutual where it is also its column's maximum; of rows tied there, the first is kept.
    keep = (best >= column_best[idx01]) & (best > min_similarity) & torch.isfinite(best)
    i0 = torch.nonzero(keep).flatten().cpu().numpy()
    i1 = idx01[keep].cpu().numpy()
    _, first = np.unique(i1, return_index=True)
    first.sort()
    return i0[first], i1[first], best[keep].double().cpu().numpy()[first]


def _pairs_within(points0: np.ndarray, points1: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """All index pairs (i, j) with points0[i] within ``radius`` of points1[j], by a grid of radius-sized cells."""
    cells1 = np.floor(points1 / radius).astype(np.int64)
    cells0 = np.floor(points0 / radius).astype(np.int64)
    low = np.minimum(cells0.min(axis=0, initial=0), cells1.min(axis=0, initial=0)) - 1
    span = max(cells0[:, 1].max(initial=0), cells1[:, 1].max(initial=0)) - low[1] + 2

    def key(cells: np.ndarray) -> np.ndarray:
        return (cells[:, 0] - low[0]) * span + (cells[:, 1] - low[1])

    keys1 = key(cells1)
    order = np.argsort(keys1, kind="stable")
    sorted_keys = keys1[order]
    rows, cols = [], []
    for dx in (-1, 0, 1):
        for dy in (-1, 0, 1):
            k = key(cells0 + (dx, dy))
            start = np.searchsorted(sorted_keys, k, "left")
            counts = np.searchsorted(sorted_keys, k, "right") - start
            i = np.repeat(np.arange(len(points0)), counts)
            # Position of each pair within its cell's run of sorted points1.
            within = np.arange(len(i)) - np.repeat(np.cumsum(counts) - counts, counts)
            rows.append(i)
            cols.append(order[np.repeat(start, counts) + within])
    i, j = np.concatenate(rows), np.concatenate(cols)
    near = np.linalg.norm(points0[i] - points1[j], axis=1) <= radius
    return i[near], j[near]


def mutual_nearest_within(
    pair_similarity: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    points0: np.ndarray,
    points1: np.ndarray,
    prior: np.ndarray,
    radius: float,
    min_similarity: float = -np.inf,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mutual nearest neighbours among the pairs within ``radius`` of a prior's prediction (guided matching).

    A keypoint has a few candidates there, so only those pairs are listed and
    scored, never the dense (N0, N1) similarity.

    Args:
        pair_similarity: (K,) int64 indexes into points0, (K,) into points1 -> (K,)
            descriptor similarity of those pairs, higher is closer.
        points0: (N0, 2) keypoints of image 0.
        points1: (N1, 2) keypoints of image 1.
        prior: (3, 3) image 0 -> image 1 transform.
        radius: candidate radius around the prior's prediction, pixels.
        min_similarity: pairs below it never match.

    Returns:
        Indexes (M,) into points0 and points1, and the (M,) float64 similarities.
    """
    i, j = _pairs_within(geometry.apply(prior, points0), points1, radius)
    score = pair_similarity(torch.from_numpy(i), torch.from_numpy(j)).double().cpu().numpy()
    by_score = np.argsort(-score, kind="stable")
    # The first occurrence of an index in score order is its best candidate.
    best_of_row = by_score[np.unique(i[by_score], return_index=True)[1]]
    best_of_col = by_score[np.unique(j[by_score], return_index=True)[1]]
    mutual = np.intersect1d(best_of_row, best_of_col)
    mutual = mutual[score[mutual] > min_similarity]
    return i[mutual], j[mutual], score[mutual]
