"""SuperGlue (Sarlin et al. 2020) on SuperPoint keypoints, laid out as the official release.

Module and parameter names follow Magic Leap's ``superglue_outdoor.pth`` /
``superglue_indoor.pth`` so the official checkpoints load strictly and unchanged.
Those weights may not be redistributed: the user passes them (``weights_path``, ``--weights``).
Unlike the reference, the network takes padded batches with keypoint masks, so
training can run a batch as one tensor operation.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from georef import weights
from georef.errors import WeightsUnavailable
from georef.matchers.base import FeatureCache, Matcher, Matches, keep_valid, load_strict, mutual_nearest_within
from georef.matchers.superpoint import SuperPoint, SuperPointConfig

#: Log-mass given to padded keypoints: effectively zero, but finite so gradients stay finite.
PADDED_LOG_MASS = -1e4


@dataclass
class SuperGlueConfig:
    """Network and matching settings (the official outdoor ones).

    Attributes:
        descriptor_dim: descriptor length.
        keypoint_encoder: hidden widths of the keypoint position encoder.
        gnn_layers: attention layer kinds, in order.
        sinkhorn_iterations: optimal-transport iterations.
        match_threshold: minimum matching probability.
    """

    descriptor_dim: int = 256
    keypoint_encoder: list[int] = field(default_factory=lambda: [32, 64, 128, 256])
    gnn_layers: list[str] = field(default_factory=lambda: ["self", "cross"] * 9)
    sinkhorn_iterations: int = 20
    match_threshold: float = 0.2


def mlp(channels: list[int]) -> nn.Sequential:
    """1x1 convolutions with batch norm and ReLU between them (not after the last)."""
    layers: list[nn.Module] = []
    for i in range(1, len(channels)):
        layers.append(nn.Conv1d(channels[i - 1], channels[i], kernel_size=1, bias=True))
        if i < len(channels) - 1:
            layers += [nn.BatchNorm1d(channels[i]), nn.ReLU()]
    return nn.Sequential(*layers)


def normalize_keypoints(keypoints: torch.Tensor, size: torch.Tensor) -> torch.Tensor:
    """(B, N, 2) pixel keypoints -> centred and scaled by 0.7 x the long side; size (B, 2) as W, H."""
    size = size.to(keypoints)
    centre = size / 2
    scaling = size.max(dim=1, keepdim=True).values * 0.7
    return (keypoints - centre[:, None]) / scaling[:, None]


class KeypointEncoder(nn.Module):
    def __init__(self, feature_dim: int, layers: list[int]) -> None:
        super().__init__()
        self.encoder = mlp([3, *layers, feature_dim])
        nn.init.constant_(self.encoder[-1].bias, 0.0)

    def forward(self, keypoints: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        return self.encoder(torch.cat([keypoints.transpose(1, 2), scores.unsqueeze(1)], dim=1))


class MultiHeadedAttention(nn.Module):
    def __init__(self, num_heads: int, d_model: int) -> None:
        super().__init__()
        self.dim = d_model // num_heads
        self.num_heads = num_heads
        self.merge = nn.Conv1d(d_model, d_model, kernel_size=1)
        self.proj = nn.ModuleList([copy.deepcopy(self.merge) for _ in range(3)])

    def forward(self, query, key, value, key_mask: torch.Tensor | None = None):
        b = query.size(0)
        query, key, value = (p(x).view(b, self.dim, self.num_heads, -1) for p, x in zip(self.proj, (query, key, value)))
        scores = torch.einsum("bdhn,bdhm->bhnm", query, key) / self.dim**0.5
        if key_mask is not None:
            scores = scores.masked_fill(~key_mask[:, None, None, :], float("-inf"))
        x = torch.einsum("bhnm,bdhm->bdhn", scores.softmax(dim=-1), value)
        return self.merge(x.contiguous().view(b, self.dim * self.num_heads, -1))


class AttentionalPropagation(nn.Module):
    def __init__(self, feature_dim: int, num_heads: int) -> None:
        super().__init__()
        self.attn = MultiHeadedAttention(num_heads, feature_dim)
        self.mlp = mlp([feature_dim * 2, feature_dim * 2, feature_dim])
        nn.init.constant_(self.mlp[-1].bias, 0.0)

    def forward(self, x, source, source_mask=None):
        return self.mlp(torch.cat([x, self.attn(x, source, source, source_mask)], dim=1))


class AttentionalGNN(nn.Module):
    def __init__(self, feature_dim: int, layer_names: list[str]) -> None:
        super().__init__()
        self.layers = nn.ModuleList([AttentionalPropagation(feature_dim, 4) for _ in layer_names])
        self.names = list(layer_names)

    def forward(self, desc0, desc1, mask0=None, mask1=None):
        for layer, name in zip(self.layers, self.names):
            if name == "cross":
                src0, src1, m0, m1 = desc1, desc0, mask1, mask0
            else:
                src0, src1, m0, m1 = desc0, desc1, mask0, mask1
            desc0, desc1 = desc0 + layer(desc0, src0, m0), desc1 + layer(desc1, src1, m1)
        return desc0, desc1


def log_optimal_transport(scores: torch.Tensor, alpha: torch.Tensor, iters: int,
                          mask0: torch.Tensor | None = None, mask1: torch.Tensor | None = None) -> torch.Tensor:
    """Sinkhorn in log space with a dustbin row and column.

    Args:
        scores: (B, N, M) similarity.
        alpha: scalar dustbin score.
        iters: iterations.
        mask0: optional (B, N) bool, False for padded keypoints; mask1 likewise (B, M).

    Returns:
        (B, N+1, M+1) log assignment probabilities (rows and columns of padded keypoints near -1e4).
    """
    b, m, n = scores.shape
    if mask0 is None:
        mask0 = scores.new_ones((b, m), dtype=torch.bool)
    if mask1 is None:
        mask1 = scores.new_ones((b, n), dtype=torch.bool)
    ms, ns = mask0.sum(1).to(scores), mask1.sum(1).to(scores)  # (B,) real keypoint counts
    couplings = torch.cat([torch.cat([scores, alpha.expand(b, m, 1)], -1),
                           torch.cat([alpha.expand(b, 1, n), alpha.expand(b, 1, 1)], -1)], 1)
    norm = -(ms + ns).log()  # (B,)
    log_mu = torch.cat([norm[:, None].expand(b, m), (ns.log() + norm)[:, None]], 1)
    log_nu = torch.cat([norm[:, None].expand(b, n), (ms.log() + norm)[:, None]], 1)
    log_mu = torch.cat([torch.where(mask0, log_mu[:, :m], log_mu.new_tensor(PADDED_LOG_MASS)), log_mu[:, m:]], 1)
    log_nu = torch.cat([torch.where(mask1, log_nu[:, :n], log_nu.new_tensor(PADDED_LOG_MASS)), log_nu[:, n:]], 1)
    u, v = torch.zeros_like(log_mu), torch.zeros_like(log_nu)
    for _ in range(iters):
        u = log_mu - torch.logsumexp(couplings + v.unsqueeze(1), dim=2)
        v = log_nu - torch.logsumexp(couplings + u.unsqueeze(2), dim=1)
    return couplings + u.unsqueeze(2) + v.unsqueeze(1) - norm[:, None, None]


def mutual_assignment(log_assignment: torch.Tensor, threshold: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Mutual best entries of an assignment above ``threshold``.

    Args:
        log_assignment: (B, N+1, M+1) from :func:`log_optimal_transport`.

    Returns:
        matches0 (B, N) int64, index into image 1 or -1; scores0 (B, N) float32 probabilities.
    """
    inner = log_assignment[:, :-1, :-1]
    max0, max1 = inner.max(2), inner.max(1)
    indices0, indices1 = max0.indices, max1.indices
    arange0 = torch.arange(indices0.shape[1], device=inner.device)[None]
    mutual0 = arange0 == indices1.gather(1, indices0)
    scores0 = torch.where(mutual0, max0.values.exp(), inner.new_tensor(0))
    valid0 = mutual0 & (scores0 > threshold)
    return torch.where(valid0, indices0, indices0.new_tensor(-1)), scores0


class SuperGlue(nn.Module):
    """SuperGlue network.

    Args:
        config: network and matching settings.
    """

    def __init__(self, config: SuperGlueConfig | None = None) -> None:
        super().__init__()
        self.config = config or SuperGlueConfig()
        dim = self.config.descriptor_dim
        self.kenc = KeypointEncoder(dim, self.config.keypoint_encoder)
        self.gnn = AttentionalGNN(dim, self.config.gnn_layers)
        self.final_proj = nn.Conv1d(dim, dim, kernel_size=1, bias=True)
        self.register_parameter("bin_score", nn.Parameter(torch.tensor(1.0)))

    def forward(self, keypoints0, scores0, descriptors0, size0, keypoints1, scores1, descriptors1, size1,
                mask0=None, mask1=None) -> torch.Tensor:
        """Log assignment between two keypoint sets.

        Args:
            keypoints0: (B, N, 2) float32 pixels, x/y; keypoints1 likewise (B, M, 2).
            scores0: (B, N) detection scores.
            descriptors0: (B, D, N) unit descriptors.
            size0: (B, 2) image width and height.
            mask0: optional (B, N) bool, False for padding; mask1 likewise.

        Returns:
            (B, N+1, M+1) log assignment probabilities, last row/column the dustbins.
        """
        desc0 = descriptors0 + self.kenc(normalize_keypoints(keypoints0, size0), scores0)
        desc1 = descriptors1 + self.kenc(normalize_keypoints(keypoints1, size1), scores1)
        desc0, desc1 = self.gnn(desc0, desc1, mask0, mask1)
        mdesc0, mdesc1 = self.final_proj(desc0), self.final_proj(desc1)
        scores = torch.einsum("bdn,bdm->bnm", mdesc0, mdesc1) / self.config.descriptor_dim**0.5
        return log_optimal_transport(scores, self.bin_score, self.config.sinkhorn_iterations, mask0, mask1)


def _weight_files(weights_path: str | Path | None) -> tuple[Path, Path]:
    """SuperPoint and SuperGlue checkpoints from ``DIR`` (official file names) or ``SP.pth,SG.pth``."""
    if weights_path is None:
        raise WeightsUnavailable("SuperPoint/SuperGlue weights cannot be fetched here; pass them as the weights "
                                 "({param:weights}): superpoint_v1.pth,superglue_outdoor.pth or a folder holding "
                                 "them", "superglue")
    text = str(weights_path)
    if "," in text:
        sp, sg = (Path(p.strip()) for p in text.split(",", 1))
    else:
        folder = Path(text)
        sp = folder / "superpoint_v1.pth"
        sg = next((folder / n for n in ("superglue_outdoor.pth", "superglue_indoor.pth") if (folder / n).is_file()),
                  folder / "superglue_outdoor.pth")
    for path in (sp, sg):
        if not path.is_file():
            raise WeightsUnavailable("weight file not found", path)
    return sp, sg


class SuperGlueMatcher(Matcher):
    """SuperPoint keypoints matched by SuperGlue, with user-supplied official checkpoints.

    Args:
        weights_path: ``SP.pth,SG.pth`` or a folder with ``superpoint_v1.pth`` and ``superglue_outdoor.pth``.
        max_keypoints: keypoints kept per image.
        match_threshold: minimum matching probability.
        device: torch device.
    """

    name = "superglue"

    def __init__(self, weights_path: str | Path | None = None, max_keypoints: int = 2048,
                 match_threshold: float = 0.2, device: str = "cpu") -> None:
        sp_path, sg_path = _weight_files(weights_path)
        self.device = torch.device(device)
        self.superpoint = load_strict(SuperPoint(SuperPointConfig(max_keypoints=max_keypoints)),
                                      weights.load_state(sp_path, "SuperPoint"), sp_path, "SuperPoint")
        self.superglue = load_strict(SuperGlue(SuperGlueConfig(match_threshold=match_threshold)),
                                     weights.load_state(sg_path, "SuperGlue"), sg_path, "SuperGlue")
        self.superpoint.eval().to(self.device)
        self.superglue.eval().to(self.device)
        self._cached = FeatureCache(self.features)

    @torch.inference_mode()
    def features(self, image: np.ndarray, valid: np.ndarray | None):
        """SuperPoint keypoints of one image.

        Args:
            image: (H, W) float32 in [0, 1].
            valid: optional (H, W) bool; no keypoint is kept where False.

        Returns:
            Keypoints (N, 2) float64 index coordinates, scores (N,), descriptors (D, N) and the padded (H', W').
        """
        h, w = image.shape
        padded = np.pad(image, ((0, -h % 8), (0, -w % 8)), mode="edge")
        x = torch.from_numpy(np.ascontiguousarray(padded, dtype=np.float32))[None, None].to(self.device)
        kp, scores, desc = self.superpoint(x)
        pts = kp.cpu().double().numpy()
        keep = (pts[:, 0] < w) & (pts[:, 1] < h) & keep_valid(pts, valid)
        keep_t = torch.from_numpy(keep).to(self.device)
        return pts[keep], scores[keep_t], desc[:, keep_t], padded.shape

    @torch.inference_mode()
    def match(self, image0, image1, valid0=None, valid1=None, prior=None, radius=8.0) -> Matches:
        pts0, s0, d0, shape0 = self._cached(image0, valid0)
        pts1, s1, d1, shape1 = self._cached(image1, valid1)
        if len(pts0) < 2 or len(pts1) < 2:
            return Matches.empty(len(pts0), len(pts1))
        if prior is not None:  # SuperGlue takes no prior: descriptor mutual NN within the radius
            i0, i1, conf = mutual_nearest_within(lambda i, j: (d0[:, i] * d1[:, j]).sum(0), pts0, pts1, prior, radius)
            return Matches(pts0[i0], pts1[i1], np.clip(conf, 0, 1), len(pts0), len(pts1))

        def size(shape):
            return torch.tensor([[shape[1], shape[0]]], dtype=torch.float32, device=self.device)

        log_assignment = self.superglue(
            torch.from_numpy(pts0).float()[None].to(self.device), s0[None], d0[None], size(shape0),
            torch.from_numpy(pts1).float()[None].to(self.device), s1[None], d1[None], size(shape1))
        matches0, scores0 = mutual_assignment(log_assignment, self.superglue.config.match_threshold)
        m0, sc = matches0[0].cpu().numpy(), scores0[0].cpu().double().numpy()
        i0 = np.flatnonzero(m0 >= 0)
        return Matches(pts0[i0], pts1[m0[i0]], sc[i0], len(pts0), len(pts1))
