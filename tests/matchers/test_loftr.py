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


def test_missing_or_wrong_weights_are_clear_errors(tmp_path):
    with pytest.raises(WeightsUnavailable, match="--weights"):
        create_matcher("loftr")
    bad = tmp_path / "bad.ckpt"
    torch.save({"state_dict": {"nope": torch.zeros(1)}}, bad)
    with pytest.raises(WeightsUnavailable, match="bad.ckpt: does not fit LoFTR"):
        LoFTRMatcher(bad)
