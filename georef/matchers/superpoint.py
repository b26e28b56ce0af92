"""SuperPoint (DeTone et al. 2018): keypoints and descriptors, laid out as the official release.

Module and parameter names follow Magic Leap's ``superpoint_v1.pth`` so that the
official checkpoint loads strictly and unchanged. The weights themselves may not be
redistributed; the user supplies them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class SuperPointConfig:
    """Detection settings (the official defaults, except a bounded keypoint count).

    Attributes:
        descriptor_dim: descriptor length (256 in the release).
        nms_radius: non-maximum suppression radius, pixels.
        keypoint_threshold: minimum detection score.
        max_keypoints: keypoints kept per image, best first (-1: all).
        remove_borders: keypoints this close to the border are dropped, pixels.
    """

    descriptor_dim: int = 256
    nms_radius: int = 4
    keypoint_threshold: float = 0.005
    max_keypoints: int = 2048
    remove_borders: int = 4


def simple_nms(scores: torch.Tensor, radius: int) -> torch.Tensor:
    """Keep local maxima of (B, H, W) scores within ``radius``; zero elsewhere."""

    def max_pool(x):
        return F.max_pool2d(x, kernel_size=radius * 2 + 1, stride=1, padding=radius)

    zeros = torch.zeros_like(scores)
    is_max = scores == max_pool(scores)
    for _ in range(2):  # suppress maxima next to already-kept ones, as the reference does
        suppressed = max_pool(is_max.float()) > 0
        suppressed_scores = torch.where(suppressed, zeros, scores)
        new_max = suppressed_scores == max_pool(suppressed_scores)
        is_max = is_max | (new_max & ~suppressed)
    return torch.where(is_max, scores, zeros)


def sample_descriptors(keypoints: torch.Tensor, descriptors: torch.Tensor, stride: int = 8) -> torch.Tensor:
    """Bilinearly sample unit descriptors at keypoints.

    Args:
        keypoints: (N, 2) float, x/y index coordinates in the image.
        descriptors: (1, D, H/8, W/8) dense descriptor map.

    Returns:
        (D, N) float32 unit descriptors.
    """
    _, c, h, w = descriptors.shape
    kp = keypoints - stride / 2 + 0.5
    kp = kp / kp.new_tensor([w * stride - stride / 2 - 0.5, h * stride - stride / 2 - 0.5])
    grid = (kp * 2 - 1).view(1, 1, -1, 2)
    sampled = F.grid_sample(descriptors, grid, mode="bilinear", align_corners=True)
    return F.normalize(sampled.reshape(c, -1), p=2, dim=0)


class SuperPoint(nn.Module):
    """SuperPoint network.

    Args:
        config: detection settings.
    """

    def __init__(self, config: SuperPointConfig | None = None) -> None:
        super().__init__()
        self.config = config or SuperPointConfig()
        self.relu = nn.ReLU(inplace=True)
        self.pool = nn.MaxPool2d(kernel_size=2, stride=2)
        c1, c2, c3, c4, c5 = 64, 64, 128, 128, 256
        self.conv1a = nn.Conv2d(1, c1, 3, 1, 1)
        self.conv1b = nn.Conv2d(c1, c1, 3, 1, 1)
        self.conv2a = nn.Conv2d(c1, c2, 3, 1, 1)
        self.conv2b = nn.Conv2d(c2, c2, 3, 1, 1)
        self.conv3a = nn.Conv2d(c2, c3, 3, 1, 1)
        self.conv3b = nn.Conv2d(c3, c3, 3, 1, 1)
        self.conv4a = nn.Conv2d(c3, c4, 3, 1, 1)
        self.conv4b = nn.Conv2d(c4, c4, 3, 1, 1)
        self.convPa = nn.Conv2d(c4, c5, 3, 1, 1)
        self.convPb = nn.Conv2d(c5, 65, 1, 1, 0)
        self.convDa = nn.Conv2d(c4, c5, 3, 1, 1)
        self.convDb = nn.Conv2d(c5, self.config.descriptor_dim, 1, 1, 0)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Detect and describe.

        Args:
            image: (1, 1, H, W) float32 in [0, 1]; H and W multiples of 8.

        Returns:
            keypoints (N, 2) float32 x/y index coordinates, scores (N,) float32,
            descriptors (D, N) float32 unit vectors.
        """
        x = self.relu(self.conv1a(image))
        x = self.pool(self.relu(self.conv1b(x)))
        x = self.relu(self.conv2a(x))
        x = self.pool(self.relu(self.conv2b(x)))
        x = self.relu(self.conv3a(x))
        x = self.pool(self.relu(self.conv3b(x)))
        x = self.relu(self.conv4a(x))
        x = self.relu(self.conv4b(x))

        scores = F.softmax(self.convPb(self.relu(self.convPa(x))), 1)[:, :-1]  # drop the "no keypoint" bin
        _, _, h, w = scores.shape
        scores = scores.permute(0, 2, 3, 1).reshape(1, h, w, 8, 8).permute(0, 1, 3, 2, 4).reshape(1, h * 8, w * 8)
        scores = simple_nms(scores, self.config.nms_radius)[0]

        cfg = self.config
        rows, cols = torch.nonzero(scores > cfg.keypoint_threshold, as_tuple=True)
        b = cfg.remove_borders
        inside = (rows >= b) & (rows < h * 8 - b) & (cols >= b) & (cols < w * 8 - b)
        rows, cols = rows[inside], cols[inside]
        point_scores = scores[rows, cols]
        if 0 <= cfg.max_keypoints < len(point_scores):
            point_scores, order = point_scores.topk(cfg.max_keypoints)
            rows, cols = rows[order], cols[order]
        keypoints = torch.stack([cols, rows], dim=1).float()

        dense = F.normalize(self.convDb(self.relu(self.convDa(x))), p=2, dim=1)
        return keypoints, point_scores, sample_descriptors(keypoints, dense)
