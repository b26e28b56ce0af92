"""The core's matchers, wrapped for training: frozen features, a trainable matcher, the loss.

Training builds on :mod:`georef.matchers` (the same extractors, the same weights);
the core never imports this package.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from kornia.feature.lightglue import normalize_keypoints
from torch import nn

from georef.matchers.lightglue import LightGlueMatcher
from georef.matchers.superglue import PADDED_LOG_MASS, SuperGlueMatcher


class FrozenFeatures:
    """Keypoints and descriptors of a core matcher's extractor; never trained.

    Args:
        matcher: the core matcher ('aliked-lightglue', 'disk-lightglue' or 'superglue').
        core: the core matcher instance whose extractor and matching network are used.
    """

    def __init__(self, matcher: str, core) -> None:
        self.matcher = matcher
        self.core = core

    @torch.inference_mode()
    def __call__(self, image: np.ndarray) -> dict[str, torch.Tensor]:
        """Features of one (H, W) float32 image: keypoints (N, 2) x/y pixels, descriptors (N, D), scores (N,)."""
        if isinstance(self.core, SuperGlueMatcher):
            pts, scores, desc, _ = self.core.features(image, None)
            desc = desc.T
        else:
            pts, desc = self.core.features(image, None)
            scores = torch.ones(len(pts))
        return {"keypoints": torch.from_numpy(pts).float(), "descriptors": desc.float().clone(),
                "scores": scores.float().clone()}


def build_core(matcher: str, weights: str | None, max_keypoints: int, device: str = "cpu"):
    """The core matcher to fine-tune, from its pretrained weights."""
    if matcher == "superglue":
        return SuperGlueMatcher(weights, max_keypoints=max_keypoints, device=device)
    return LightGlueMatcher(matcher, weights, max_keypoints=max_keypoints, device=device)


class TrainableMatcher(nn.Module):
    """The matching network of a core matcher, run on padded batches with masks.

    Args:
        core: a :class:`LightGlueMatcher` or :class:`SuperGlueMatcher`.
        train_layers: LightGlue layers trained, counted from the last; 0 trains all.
    """

    def __init__(self, core, train_layers: int = 0) -> None:
        super().__init__()
        self.kind = "superglue" if isinstance(core, SuperGlueMatcher) else "lightglue"
        self.net = core.superglue if self.kind == "superglue" else core.lightglue
        self.net.train()
        if self.kind == "lightglue" and train_layers:
            n = self.net.conf.n_layers
            trained = {f"transformers.{i}." for i in range(n - train_layers, n)}
            trained |= {f"log_assignment.{i}." for i in range(n - train_layers, n)}
            for name, p in self.net.named_parameters():
                p.requires_grad = any(name.startswith(t) for t in trained)
        if self.kind == "superglue":  # padded keypoints would pollute the batch statistics
            for m in self.net.modules():
                if isinstance(m, nn.BatchNorm1d):
                    m.eval()

    def forward(self, batch: dict[str, torch.Tensor]) -> list[torch.Tensor]:
        """Log assignments of every supervised layer.

        Args:
            batch: ``keypoints0`` (B, N, 2), ``descriptors0`` (B, N, D), ``scores0`` (B, N),
                ``mask0`` (B, N) bool, ``size0`` (B, 2) width/height; the same with 1 (B, M, ...).

        Returns:
            (B, N+1, M+1) log assignments, one per layer (LightGlue) or one (SuperGlue).
        """
        if self.kind == "superglue":
            return [self.net(batch["keypoints0"], batch["scores0"], batch["descriptors0"].transpose(1, 2),
                             batch["size0"], batch["keypoints1"], batch["scores1"],
                             batch["descriptors1"].transpose(1, 2), batch["size1"], batch["mask0"], batch["mask1"])]
        net = self.net
        m0, m1 = batch["mask0"], batch["mask1"]
        k0 = normalize_keypoints(batch["keypoints0"], batch["size0"])
        k1 = normalize_keypoints(batch["keypoints1"], batch["size1"])
        d0, d1 = net.input_proj(batch["descriptors0"]), net.input_proj(batch["descriptors1"])
        e0, e1 = net.posenc(k0), net.posenc(k1)
        pair = m0[:, :, None] & m1[:, None, :]
        # Without padding no mask is passed, which lets attention use its fused kernels.
        padded = not (bool(m0.all()) and bool(m1.all()))
        if padded:
            bias0, bias1, bias01 = (_attention_bias(a, b) for a, b in ((m0, m0), (m1, m1), (m0, m1)))
        out = []
        for i in range(net.conf.n_layers):
            layer = net.transformers[i]
            if padded:
                d0, d1 = layer.self_attn(d0, e0, bias0), layer.self_attn(d1, e1, bias1)
                d0, d1 = _cross_attention(layer.cross_attn, d0, d1, bias01)
            else:
                d0, d1 = layer(d0, d1, e0, e1)
            out.append(_masked_assignment(net.log_assignment[i], d0, d1, pair))
        return out

    def official_state_dict(self) -> dict[str, torch.Tensor]:
        """The weights in the released file layout, loadable by ``georef align --weights``."""
        state = {k: v.detach().cpu() for k, v in self.net.state_dict().items()}
        if self.kind == "superglue":
            return state
        renamed = {}
        for key, value in state.items():  # kornia's names -> the released LightGlue names
            for part in ("self_attn", "cross_attn"):
                prefix = key.split(".")
                if len(prefix) > 2 and prefix[0] == "transformers" and prefix[2] == part:
                    key = ".".join([part, prefix[1], *prefix[3:]])
            renamed[key] = value
        return renamed


def _attention_bias(valid_q: torch.Tensor, valid_k: torch.Tensor) -> torch.Tensor:
    """(B, 1, N, M) additive attention bias: 0 between valid keypoints, a large negative number otherwise.

    A finite bias instead of a boolean mask: a padded query row would otherwise be masked
    entirely, and its softmax (NaN, zeroed in the forward pass) sends NaN gradients back.
    """
    pair = valid_q[:, None, :, None] & valid_k[:, None, None, :]
    return torch.zeros(pair.shape, device=pair.device).masked_fill(~pair, PADDED_LOG_MASS)


def _cross_attention(block, x0: torch.Tensor, x1: torch.Tensor, bias: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """kornia's ``CrossBlock`` forward with an additive bias instead of a boolean mask (same weights)."""
    qk0, qk1 = block.map_(block.to_qk, x0, x1)
    v0, v1 = block.map_(block.to_v, x0, x1)
    qk0, qk1, v0, v1 = (t.unflatten(-1, (block.heads, -1)).transpose(1, 2) for t in (qk0, qk1, v0, v1))
    qk0, qk1 = qk0 * block.scale**0.5, qk1 * block.scale**0.5
    sim = torch.einsum("bhid, bhjd -> bhij", qk0, qk1) + bias
    m0 = torch.einsum("bhij, bhjd -> bhid", F.softmax(sim, dim=-1), v1)
    m1 = torch.einsum("bhji, bhjd -> bhid", F.softmax(sim, dim=-2), v0)
    m0, m1 = block.map_(lambda t: t.transpose(1, 2).flatten(start_dim=-2), m0, m1)
    m0, m1 = block.map_(block.to_out, m0, m1)
    return x0 + block.ffn(torch.cat([x0, m0], -1)), x1 + block.ffn(torch.cat([x1, m1], -1))


def _masked_assignment(assignment, desc0, desc1, pair_mask) -> torch.Tensor:
    """LightGlue's dual-softmax assignment with matchability, padded pairs excluded."""
    mdesc0, mdesc1 = assignment.final_proj(desc0), assignment.final_proj(desc1)
    d = mdesc0.shape[-1]
    sim = torch.einsum("bmd,bnd->bmn", mdesc0 / d**0.25, mdesc1 / d**0.25)
    sim = sim.masked_fill(~pair_mask, PADDED_LOG_MASS)
    z0, z1 = assignment.matchability(desc0), assignment.matchability(desc1)
    b, m, n = sim.shape
    scores = F.log_softmax(sim, 2) + F.log_softmax(sim, 1) + F.logsigmoid(z0) + F.logsigmoid(z1).transpose(1, 2)
    out = sim.new_zeros((b, m + 1, n + 1))
    out[:, :m, :n] = scores
    out[:, :-1, -1] = F.logsigmoid(-z0.squeeze(-1))
    out[:, -1, :-1] = F.logsigmoid(-z1.squeeze(-1))
    return out


def assignment_loss(log_assignment: torch.Tensor, batch: dict[str, torch.Tensor], balance: float = 0.5
                    ) -> torch.Tensor:
    """Negative log-likelihood of the true assignment, both directions and both dustbins.

    Args:
        log_assignment: (B, N+1, M+1).
        batch: ``gt_matches`` (B, N, M) bool, ``unmatched0`` (B, N) bool, ``unmatched1`` (B, M) bool.
        balance: weight of the matches against the unmatchable points.

    Returns:
        Scalar loss, averaged over the batch.
    """
    gt, un0, un1 = batch["gt_matches"], batch["unmatched0"], batch["unmatched1"]
    inner = log_assignment[:, :-1, :-1]
    pos = torch.where(gt, inner, 0).sum((1, 2)) / gt.sum((1, 2)).clamp(min=1)
    neg = (torch.where(un0, log_assignment[:, :-1, -1], 0).sum(1)
           + torch.where(un1, log_assignment[:, -1, :-1], 0).sum(1)) / (un0.sum(1) + un1.sum(1)).clamp(min=1)
    return -(balance * pos + (1 - balance) * neg).mean()


def deep_loss(log_assignments: list[torch.Tensor], batch: dict[str, torch.Tensor], balance: float) -> torch.Tensor:
    """Deep supervision: the loss of every layer's assignment, averaged."""
    return torch.stack([assignment_loss(la, batch, balance) for la in log_assignments]).mean()
