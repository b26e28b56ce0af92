import numpy as np
import pytest
import torch
from kornia.feature import LoFTR

from georef import raster
from georef.errors import WeightsUnavailable
from georef.matchers import create_matcher
from georef.matchers.loftr import LoFTRMatcher, resize_for_matching, to_input_raster


@pytest.fixture(scope="module")
def generated_weights(tmp_path_factory):
    """A checkpoint with the official layout and key names, random values (the real one is not reachable)."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("loftr") / "outdoor_ds.ckpt"
    torch.save({"state_dict": LoFTR(pretrained=None).state_dict()}, path)
    return path


def test_a_known_scaling_round_trips():
    image = np.random.default_rng(0).random((1000, 700), dtype=np.float32)
    small, factors = resize_for_matching(image, 640)
    assert small.shape[0] % 8 == 0 and small.shape[1] % 8 == 0 and max(small.shape) <= 640 + 7
    np.testing.assert_allclose(factors, (700 / 448, 1000 / 640))
    # the far corner of the resized content maps onto the input's far corner, the origin onto the origin
    np.testing.assert_allclose(to_input_raster([[448.0, 640.0], [0.0, 0.0]], factors), [[700.0, 1000.0], [0, 0]])
    untouched, same = resize_for_matching(image[:96, :80], 640)
    assert same == (1.0, 1.0) and untouched.shape == (96, 80)


def test_generated_checkpoint_loads_strictly_and_matches_a_real_pair(generated_weights, scene):
    matcher = LoFTRMatcher(generated_weights, min_confidence=0.0)
    data = scene.data[:, 600:900, 600:900]
    full = raster.normalise(data, np.ones(data.shape[1:], bool))
    a, b = full[:256, :256], full[20:276, 30:286]
    m = matcher.match(a, b)
    assert len(m) > 0 and m.points0.shape == m.points1.shape == (len(m), 2)
    assert np.isfinite(m.points0).all() and np.isfinite(m.points1).all()
    assert (m.points0 >= -0.5).all() and (m.points0 < 256).all() and (m.points1 < 256).all()
    assert ((m.confidence >= 0) & (m.confidence <= 1)).all()


class _KnownMatches(torch.nn.Module):
    """Stands in for LoFTR: reports given input points where a resized image shows them.

    LoFTR reports raster coordinates (pixel centre at +0.5) of the image it is given, which
    here is the input shrunk by ``factors`` and padded; the matcher must map them back exactly.
    """

    def __init__(self, points0, points1, factors0, factors1):
        super().__init__()
        self.points = points0, points1
        self.factors = factors0, factors1

    def forward(self, batch):
        (p0, p1), (f0, f1) = self.points, self.factors
        resized = [(p + 0.5) / np.asarray(f) for p, f in ((p0, f0), (p1, f1))]  # index -> resized raster
        return {"keypoints0": torch.from_numpy(resized[0]), "keypoints1": torch.from_numpy(resized[1]),
                "confidence": torch.full((len(p0),), 0.9)}


def test_coordinates_map_back_through_a_known_resize_and_padding(generated_weights):
    matcher = LoFTRMatcher(generated_weights, max_side=640)
    image0 = np.zeros((1000, 700), np.float32)  # shrunk to 640 x 448
    image1 = np.zeros((300, 205), np.float32)  # unchanged, padded to 304 x 208
    rng = np.random.default_rng(1)
    points0 = rng.uniform(0, 690, (50, 2))
    points1 = rng.uniform(0, 200, (50, 2))
    factors0 = resize_for_matching(image0, 640)[1]
    factors1 = resize_for_matching(image1, 640)[1]
    assert factors0 == (700 / 448, 1000 / 640) and factors1 == (1.0, 1.0)
    matcher.model = _KnownMatches(points0, points1, factors0, factors1)
    m = matcher.match(image0, image1)
    # exact to rounding: a half-pixel slip in either direction would show as 0.5 or 0.78 px
    np.testing.assert_allclose(m.points0, points0, atol=1e-6)
    np.testing.assert_allclose(m.points1, points1, atol=1e-6)


def test_missing_or_wrong_weights_are_clear_errors(tmp_path):
    with pytest.raises(WeightsUnavailable, match=r"\(weights\)"):
        create_matcher("loftr")
    bad = tmp_path / "bad.ckpt"
    torch.save({"state_dict": {"nope": torch.zeros(1)}}, bad)
    with pytest.raises(WeightsUnavailable, match="bad.ckpt: does not fit LoFTR"):
        LoFTRMatcher(bad)
