"""SIFT (OpenCV) with Lowe's ratio test and a mutual check."""

from __future__ import annotations

import cv2
import numpy as np
import torch

from georef.matchers.base import Matcher, Matches, mutual_nearest_within


class SiftMatcher(Matcher):
    """OpenCV SIFT keypoints matched by mutual nearest neighbour with a ratio test.

    Args:
        max_keypoints: keypoints kept per image.
        ratio: Lowe's ratio threshold.
    """

    name = "sift"

    def __init__(self, max_keypoints: int = 4096, ratio: float = 0.85) -> None:
        self.max_keypoints = max_keypoints
        self.ratio = ratio

    def _detect(self, image: np.ndarray, valid: np.ndarray | None):
        gray = np.round(image * 255).astype(np.uint8)
        mask = None if valid is None else valid.astype(np.uint8) * 255
        sift = cv2.SIFT_create(nfeatures=self.max_keypoints)
        kps, desc = sift.detectAndCompute(gray, mask)
        pts = np.array([k.pt for k in kps], dtype=np.float64).reshape(-1, 2)
        return pts, desc

    def match(self, image0, image1, valid0=None, valid1=None, prior=None, radius=8.0) -> Matches:
        pts0, d0 = self._detect(image0, valid0)
        pts1, d1 = self._detect(image1, valid1)
        if len(pts0) < 2 or len(pts1) < 2:
            return Matches.empty(len(pts0), len(pts1))
        if prior is not None:
            # Guided: the radius replaces the ratio test. Similarity 1 - distance / 512
            # (SIFT descriptors have norm 512) keeps confidences in [0, 1].
            t0, t1 = torch.from_numpy(d0), torch.from_numpy(d1)
            i0, i1, conf = mutual_nearest_within(lambda i, j: 1 - torch.linalg.norm(t0[i] - t1[j], dim=1) / 512,
                                                 pts0, pts1, prior, radius)
            return Matches(pts0[i0], pts1[i1], np.clip(conf, 0, 1), len(pts0), len(pts1))
        bf = cv2.BFMatcher(cv2.NORM_L2)
        fwd = bf.knnMatch(d0, d1, k=2)
        back = {m.queryIdx: m.trainIdx for m in bf.match(d1, d0)}
        i0, i1, conf = [], [], []
        for pair in fwd:
            if len(pair) < 2:
                continue
            best, second = pair
            ratio = best.distance / max(second.distance, 1e-9)
            if ratio < self.ratio and back.get(best.trainIdx) == best.queryIdx:
                i0.append(best.queryIdx)
                i1.append(best.trainIdx)
                conf.append(1.0 - ratio)
        return Matches(pts0[i0], pts1[i1], np.asarray(conf, dtype=np.float64), len(pts0), len(pts1))
