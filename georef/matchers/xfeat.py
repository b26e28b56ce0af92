"""XFeat (kornia) sparse keypoints matched by mutual nearest neighbour."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from kornia.feature.xfeat import XFeat

from georef import weights
from georef.matchers.base import FeatureCache, Matcher, Matches, keep_valid, mutual_nearest, mutual_nearest_within

#: XFeat resizes inputs to multiples of this; padding instead keeps coordinates exact.
_STRIDE = 32


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
        state = torch.load(path, map_location="cpu", weights_only=True)
        self.model = XFeat(top_k=max_keypoints)
        self.model.net.load_state_dict(state)
        self.model.eval().to(self.device)
        self._cached_features = FeatureCache(self._features)

    def _features(self, image: np.ndarray, valid: np.ndarray | None) -> tuple[np.ndarray, torch.Tensor]:
        """Keypoints (N, 2) float64 index coordinates, sub-pixel, and (N, 64) unit descriptors."""
        h, w = image.shape
        x = _pad(image).to(self.device)
        hp, wp = x.shape[-2:]
        dense, logits, reliability = self.model.net(x)
        dense = F.normalize(dense, dim=1)
        heat = XFeat._get_kpts_heatmap(logits)  # (1, 1, Hp, Wp)
        pos = XFeat._nms(heat, threshold=self.model.detection_threshold, kernel_size=5)[0]
        pos = pos[(pos[:, 0] >= 0) & (pos[:, 0] < w) & (pos[:, 1] < h)]
        pts = pos.cpu().numpy()
        pos = pos[torch.from_numpy(keep_valid(pts.astype(np.float64), valid)).to(pos.device)]
        score = heat[0, 0, pos[:, 1], pos[:, 0]] * self.model._bilinear(reliability, pos[None], hp, wp)[0, :, 0]
        order = score.argsort(descending=True)[: self.max_keypoints]
        pos = pos[order]
        refined = pos.double()
        desc = self.model.interpolator(dense, refined[None].float(), H=hp, W=wp)[0]
        return refined.cpu().numpy(), F.normalize(desc, dim=-1)

    @torch.inference_mode()
    def match(self, image0, image1, valid0=None, valid1=None, prior=None, radius=8.0) -> Matches:
        pts0, d0 = self._cached_features(image0, valid0)
        pts1, d1 = self._cached_features(image1, valid1)
        if len(pts0) == 0 or len(pts1) == 0:
            return Matches.empty(len(pts0), len(pts1))
        if prior is None:
            i0, i1, conf = mutual_nearest(d0 @ d1.T, self.min_similarity)
        else:
            i0, i1, conf = mutual_nearest_within(lambda i, j: (d0[i] * d1[j]).sum(-1), pts0, pts1, prior, radius,
                                                 self.min_similarity)
        return Matches(pts0[i0], pts1[i1], conf, len(pts0), len(pts1))
