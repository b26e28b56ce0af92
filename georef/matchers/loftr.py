"""LoFTR (kornia), a dense detector-free matcher, with a user-supplied checkpoint."""

from __future__ import annotations

import copy
from pathlib import Path

import cv2
import numpy as np
import torch
from kornia.feature import LoFTR
from kornia.feature.loftr.loftr import default_cfg

from georef import geometry, weights
from georef.errors import WeightsUnavailable
from georef.matchers.base import Matcher, Matches, keep_valid, load_strict

#: Dense matching memory grows with the image area: images are matched at most this large.
MAX_SIDE = 640


def resize_for_matching(image: np.ndarray, max_side: int = MAX_SIDE) -> tuple[np.ndarray, tuple[float, float]]:
    """Shrink an image so its long side is at most ``max_side``, then pad it to multiples of 8.

    Returns:
        The image, and the (x, y) factors from its raster coordinates to the input's.
    """
    h, w = image.shape
    scale = min(1.0, max_side / max(h, w))
    nh, nw = max(8, round(h * scale)), max(8, round(w * scale))
    small = image if (nh, nw) == (h, w) else cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA)
    padded = np.pad(small, ((0, -nh % 8), (0, -nw % 8)), mode="edge")
    return padded, (w / nw, h / nh)


def to_input_raster(points: np.ndarray, factors: tuple[float, float]) -> np.ndarray:
    """Raster coordinates in a resized image -> raster coordinates in the input (exact for area scaling)."""
    return np.asarray(points, np.float64) * np.asarray(factors)


class LoFTRMatcher(Matcher):
    """kornia's LoFTR with the official outdoor checkpoint (or any with its key names) given by the user.

    The official LoFTR weights may not be redistributed, so none is fetched.

    Args:
        weights_path: checkpoint (``{"state_dict": ...}`` as released, or a bare state dict).
        max_side: images are matched at most this large; coordinates are mapped back exactly.
        min_confidence: coarse matching score a match must exceed.
        device: torch device.
    """

    name = "loftr"

    def __init__(self, weights_path: str | Path | None = None, max_side: int = MAX_SIDE, min_confidence: float = 0.2,
                 device: str = "cpu") -> None:
        if weights_path is None:
            raise WeightsUnavailable(
                "LoFTR's weights cannot be fetched here; pass the official outdoor checkpoint as the weights "
                "({param:weights})", "loftr")
        path = Path(weights_path)
        if not path.is_file():
            raise WeightsUnavailable("weight file not found", path)
        config = copy.deepcopy(default_cfg)
        config["match_coarse"]["thr"] = min_confidence
        self.model = LoFTR(pretrained=None, config=config)
        load_strict(self.model, weights.load_state(path, "LoFTR"), path, "LoFTR")
        self.device = torch.device(device)
        self.model.eval().to(self.device)
        self.max_side = max_side

    @torch.inference_mode()
    def match(self, image0, image1, valid0=None, valid1=None, prior=None, radius=8.0) -> Matches:
        small0, f0 = resize_for_matching(image0, self.max_side)
        small1, f1 = resize_for_matching(image1, self.max_side)

        def tensor(image):
            return torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None].to(self.device)

        out = self.model({"image0": tensor(small0), "image1": tensor(small1)})
        # LoFTR reports raster coordinates (pixel centre at +0.5): scale, then back to index coordinates.
        p0 = to_input_raster(out["keypoints0"].cpu().double().numpy(), f0) - geometry.PIXEL_CENTRE
        p1 = to_input_raster(out["keypoints1"].cpu().double().numpy(), f1) - geometry.PIXEL_CENTRE
        conf = out["confidence"].cpu().double().numpy()
        h0, w0 = image0.shape
        h1, w1 = image1.shape
        keep = (p0[:, 0] < w0) & (p0[:, 1] < h0) & (p1[:, 0] < w1) & (p1[:, 1] < h1)
        keep &= keep_valid(p0, valid0) & keep_valid(p1, valid1)
        if prior is not None:  # no descriptors to re-match: keep the matches the prior supports
            keep &= np.linalg.norm(geometry.apply(prior, p0) - p1, axis=1) <= radius
        n0, n1 = len(p0), len(p1)
        return Matches(p0[keep], p1[keep], np.clip(conf[keep], 0, 1), n0, n1)
