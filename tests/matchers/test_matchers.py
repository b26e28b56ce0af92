import numpy as np
import pytest

from georef import geometry, raster
from georef.matchers import MATCHERS, USER_WEIGHTS, create_matcher

FETCHABLE = [m for m in MATCHERS if m not in USER_WEIGHTS]
from georef.matchers.base import mutual_nearest, mutual_nearest_within


@pytest.fixture(scope="module")
def images(scene):
    """A 256 px image and the same ground shifted by (+13, -7) px, normalised."""
    data = scene.data[:, 600:900, 600:900]
    valid = np.ones(data.shape[1:], bool)
    full = raster.normalise(data, valid)
    return full[20:276, 20:276], full[27:283, 7:263]  # image1(x, y) == image0(x + 13, y - 7)


@pytest.mark.parametrize("name", FETCHABLE)
def test_matches_follow_a_known_shift(name, images):
    a, b = images
    m = create_matcher(name).match(a, b)
    assert len(m) >= 30
    assert m.points0.shape == m.points1.shape == (len(m), 2)
    assert m.confidence.shape == (len(m),) and ((m.confidence >= 0) & (m.confidence <= 1)).all()
    offset = m.points1 - m.points0
    # XFeat detects on an 8 px cell grid, so a shift that is not a multiple of 8
    # moves a keypoint by a pixel or two: the median is exact, single matches jitter.
    np.testing.assert_allclose(np.median(offset, axis=0), (13, -7), atol=0.5)
    assert (np.linalg.norm(offset - (13, -7), axis=1) < 3).mean() > 0.8


@pytest.mark.parametrize("name", FETCHABLE)
def test_guided_matching_keeps_matches_near_the_prior(name, images):
    a, b = images
    prior = geometry.translation(13, -7)
    m = create_matcher(name).match(a, b, prior=prior, radius=3.0)
    assert len(m) >= 30
    assert (np.linalg.norm(m.points1 - geometry.apply(prior, m.points0), axis=1) <= 3.0 + 1e-6).all()


@pytest.mark.parametrize("name", FETCHABLE)
def test_no_keypoints_on_invalid_pixels(name, images):
    a, b = images
    valid = np.ones_like(a, bool)
    valid[:, :128] = False
    m = create_matcher(name).match(a, b, valid0=valid)
    assert len(m) > 0 and (m.points0[:, 0] >= 127.5).all()


def test_mutual_nearest_needs_both_directions():
    import torch

    sim = torch.tensor([[0.9, 0.8], [0.95, 0.1]])
    i0, i1, conf = mutual_nearest(sim, torch.eye(2))  # descriptors whose similarity is ``sim``
    # row 0's best is column 0, but column 0 prefers row 1: only (1, 0) is mutual
    assert i0.tolist() == [1] and i1.tolist() == [0] and conf[0] == pytest.approx(0.95)


@pytest.mark.parametrize("chunk", [64, 1000])
def test_mutual_nearest_in_chunks_equals_argmax_both_ways(chunk):
    import torch

    torch.manual_seed(0)
    d0, d1 = torch.randn(700, 16), torch.randn(500, 16)
    sim = d0 @ d1.T
    forward, backward = sim.argmax(dim=1), sim.argmax(dim=0)
    expected = [(i, int(j)) for i, j in enumerate(forward) if backward[j] == i and sim[i, j] > 0.5]
    i0, i1, conf = mutual_nearest(d0, d1, 0.5, rows_per_chunk=chunk)
    assert list(zip(i0.tolist(), i1.tolist())) == expected and len(expected) > 50
    np.testing.assert_allclose(conf, [float(sim[i, j]) for i, j in expected], rtol=1e-5)


@pytest.mark.parametrize("n0, n1", [(3000, 2800), (40, 0), (0, 40)])
def test_guided_mutual_nearest_equals_brute_force(n0, n1):
    import torch

    rng = np.random.default_rng(n0)
    points0, points1 = rng.random((n0, 2)) * 400, rng.random((n1, 2)) * 400
    sim = torch.from_numpy(rng.random((n0, n1)).astype(np.float32))
    prior = np.array([[1.01, 0.01, -3.2], [0.0, 0.99, 5.1], [0, 0, 1]])
    i0, i1, conf = mutual_nearest_within(lambda i, j: sim[i, j], points0, points1, prior, 4.0, 0.3)
    # Brute force: mask every pair farther than the radius from the prediction.
    dist = np.linalg.norm(geometry.apply(prior, points0)[:, None] - points1[None], axis=2)
    masked = np.where(dist <= 4.0, sim.numpy(), -np.inf)
    expected = [(a, int(masked[a].argmax())) for a in range(n0) if n1 and np.isfinite(masked[a].max())
                and masked[:, masked[a].argmax()].argmax() == a and masked[a].max() > 0.3]
    assert sorted(zip(i0.tolist(), i1.tolist())) == expected
    assert len(expected) > 0 or 0 in (n0, n1)
    np.testing.assert_allclose(conf, sim.numpy()[i0, i1])


def test_unknown_matcher():
    with pytest.raises(ValueError, match="matcher 'loftr2' is not one of"):
        create_matcher("loftr2")


def test_lightglue_weights_that_do_not_fit_are_refused(tmp_path):
    import torch

    from georef.errors import WeightsUnavailable
    from georef.matchers.lightglue import LightGlueMatcher

    bogus = tmp_path / "bogus.pth"
    torch.save({"not.a.weight": torch.zeros(1)}, bogus)
    with pytest.raises(WeightsUnavailable, match="bogus.pth: does not fit LightGlue"):
        LightGlueMatcher("aliked-lightglue", weights_path=bogus)


def test_auto_device_is_cuda_only_where_torch_sees_a_gpu():
    import torch

    from georef.matchers import resolve_device

    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == "cpu"


@pytest.mark.parametrize("device, message", [("foo", "is not one of auto, cpu"), ("meta", "is not one of auto, cpu"),
                                             ("cuda:64", "CUDA devices here")])
def test_a_device_torch_cannot_run_on_is_named(device, message):
    # They ended in "internal error: AssertionError: Torch not compiled with CUDA enabled" and the like.
    from georef.errors import InvalidOption
    from georef.matchers import resolve_device

    with pytest.raises(InvalidOption, match=message):
        resolve_device(device)
