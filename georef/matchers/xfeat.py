"""XFeat (kornia) sparse keypoints matched by mutual nearest neighbour."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from kornia.feature import XFeat

from georef import weights
from georef.matchers.base import (
    FeatureCache,
    Matcher,
    Matches,
    keep_valid,
    load_strict,
    mutual_nearest,
    mutual_nearest_within,
)

#: XFeat resizes inputs to multiples of this; padding instead keeps coordinates exact.
_STRIDE = 32
#: ``top_k`` that keeps every detection.
_ALL = 2**31 - 1


def _pad(image: np.ndarray) -> torch.Tensor:
    """(H, W) float32 -> (1, 1, H', W') tensor padded bottom/right to multiples of 32."""
    h, w = image.shape
    ph, pw = -h % _STRIDE, -w % _STRIDE
    padded = np.pad(image, ((0, ph), (0, pw)), mode="edge")
    return torch.from_numpy(np.ascontiguousarray(padded))[None, None]


class XFeatMatcher(Matcher):
    """XFeat keypoints and descriptors, mutual nearest-neighbour matching.

    Args:
        weights_path: XFeat state dict; default resolved by :mod:`georef.weights`.
        max_keypoints: keypoints kept per image.
        min_similarity: minimum cosine similarity of a match.
        device: torch device.
    """

    name = "xfeat"

    def __init__(
        self,
        weights_path: str | Path | None = None,
        max_keypoints: int = 4096,
        min_similarity: float = 0.8,
        device: str = "cpu",
    ) -> None:
        self.max_keypoints = max_keypoints
        self.min_similarity = min_similarity
        self.device = torch.device(device)
        path = weights.resolve("xfeat", weights_path)
        self.model = XFeat(top_k=max_keypoints)
        load_strict(self.model.net, weights.load_state(path, "XFeat"), path, "XFeat")
        self.model.eval().to(self.device)
        self._cached_features = FeatureCache(self.features)

    @torch.inference_mode()
    def features(self, image: np.ndarray, valid: np.ndarray | None) -> tuple[np.ndarray, torch.Tensor]:
        """Keypoints and descriptors of one image.

        Args:
            image: (H, W) float32 in [0, 1].
            valid: optional (H, W) bool; no keypoint is kept where False.

        Returns:
            Keypoints (N, 2) float64 index coordinates, best first, and (N, 64) unit descriptors.
        """
        h, w = image.shape
        # Every detection is kept at first: the strongest are chosen among the valid ones only.
        out = self.model.detectAndCompute(_pad(image).to(self.device), top_k=_ALL)[0]
        pts = out["keypoints"].cpu().double().numpy()
        keep = (pts[:, 0] < w) & (pts[:, 1] < h) & keep_valid(pts, valid)
        first = np.flatnonzero(keep)[: self.max_keypoints]  # detectAndCompute sorts by score
        return pts[first], out["descriptors"][torch.from_numpy(first).to(self.device)]

    @torch.inference_mode()
    def match(self, image0, image1, valid0=None, valid1=None, prior=None, radius=8.0) -> Matches:
        pts0, d0 = self._cached_features(image0, valid0)
        pts1, d1 = self._cached_features(image1, valid1)
        if len(pts0) == 0 or len(pts1) == 0:
            return Matches.empty(len(pts0), len(pts1))
        if prior is None:
            i0, i1, conf = mutual_nearest(d0, d1, self.min_similarity)
        else:
            i0, i1, conf = mutual_nearest_within(lambda i, j: (d0[i] * d1[j]).sum(-1), pts0, pts1, prior, radius,
                                                 self.min_similarity)
        return Matches(pts0[i0], pts1[i1], conf, len(pts0), len(pts1))
