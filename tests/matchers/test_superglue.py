import numpy as np
import pytest
import torch

from georef import raster
from georef.errors import WeightsUnavailable
from georef.matchers import create_matcher
from georef.matchers.superglue import SuperGlue, SuperGlueConfig, SuperGlueMatcher


def official_superpoint_layout() -> dict[str, tuple[int, ...]]:
    """Key names and shapes of Magic Leap's superpoint_v1.pth, written out from its model definition."""
    convs = {"1a": (64, 1, 3), "1b": (64, 64, 3), "2a": (64, 64, 3), "2b": (64, 64, 3), "3a": (128, 64, 3),
             "3b": (128, 128, 3), "4a": (128, 128, 3), "4b": (128, 128, 3), "Pa": (256, 128, 3),
             "Pb": (65, 256, 1), "Da": (256, 128, 3), "Db": (256, 256, 1)}
    layout = {}
    for name, (out, inp, k) in convs.items():
        layout[f"conv{name}.weight"] = (out, inp, k, k)
        layout[f"conv{name}.bias"] = (out,)
    return layout


def official_superglue_layout() -> dict[str, tuple[int, ...]]:
    """Key names and shapes of superglue_outdoor.pth (MLPs as Sequential: conv, BN, ReLU, ...)."""
    layout: dict[str, tuple[int, ...]] = {"bin_score": ()}

    def mlp(prefix, channels):
        for i in range(1, len(channels)):
            index = 3 * (i - 1)
            layout[f"{prefix}.{index}.weight"] = (channels[i], channels[i - 1], 1)
            layout[f"{prefix}.{index}.bias"] = (channels[i],)
            if i < len(channels) - 1:
                for stat in ("weight", "bias", "running_mean", "running_var"):
                    layout[f"{prefix}.{index + 1}.{stat}"] = (channels[i],)
                layout[f"{prefix}.{index + 1}.num_batches_tracked"] = ()

    mlp("kenc.encoder", [3, 32, 64, 128, 256, 256])
    for layer in range(18):
        for part in ("merge", "proj.0", "proj.1", "proj.2"):
            layout[f"gnn.layers.{layer}.attn.{part}.weight"] = (256, 256, 1)
            layout[f"gnn.layers.{layer}.attn.{part}.bias"] = (256,)
        mlp(f"gnn.layers.{layer}.mlp", [512, 512, 256])
    layout["final_proj.weight"] = (256, 256, 1)
    layout["final_proj.bias"] = (256,)
    return layout


def generated_state(layout: dict[str, tuple[int, ...]], seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in layout.items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(0)
        elif key.endswith("running_var"):
            state[key] = torch.ones(shape)
        else:
            state[key] = torch.randn(shape, generator=g) * 0.1
    return state


@pytest.fixture(scope="module")
def generated_weights(tmp_path_factory):
    folder = tmp_path_factory.mktemp("superglue")
    torch.save(generated_state(official_superpoint_layout(), 0), folder / "superpoint_v1.pth")
    torch.save(generated_state(official_superglue_layout(), 1), folder / "superglue_outdoor.pth")
    return folder


def test_generated_official_checkpoints_load_strictly_and_match_a_real_pair(generated_weights, scene):
    matcher = SuperGlueMatcher(generated_weights, max_keypoints=512, match_threshold=0.0)
    data = scene.data[:, 600:900, 600:900]
    full = raster.normalise(data, np.ones(data.shape[1:], bool))
    a, b = full[:250, :250], full[20:270, 30:280]  # not multiples of 8: padded inside
    m = matcher.match(a, b)
    assert 0 < len(m) <= 512 and m.points0.shape == m.points1.shape == (len(m), 2)
    assert m.keypoints0 > 0 and m.keypoints1 > 0
    assert np.isfinite(m.points0).all() and np.isfinite(m.points1).all()
    assert (m.points0 >= 0).all() and (m.points0 < 250).all() and (m.points1 < 250).all()
    assert ((m.confidence >= 0) & (m.confidence <= 1)).all()
    assert len(np.unique(m.points1, axis=0)) == len(m)  # one-to-one
    guided = matcher.match(a, b, prior=np.array([[1, 0, -30], [0, 1, -20], [0, 0, 1.0]]), radius=4)
    assert len(guided) >= 10  # an empty result would pass the radius check below
    assert (np.linalg.norm(guided.points0 - [30, 20] - guided.points1, axis=1) <= 4).all()


def test_both_files_can_be_named_and_missing_ones_are_clear_errors(generated_weights, tmp_path):
    sp, sg = generated_weights / "superpoint_v1.pth", generated_weights / "superglue_outdoor.pth"
    assert isinstance(create_matcher("superglue", f"{sp},{sg}"), SuperGlueMatcher)
    with pytest.raises(WeightsUnavailable, match=r"\(weights\)"):
        create_matcher("superglue")
    with pytest.raises(WeightsUnavailable, match="superglue_outdoor.pth: weight file not found"):
        SuperGlueMatcher(f"{sp},{tmp_path / 'superglue_outdoor.pth'}")
    with pytest.raises(WeightsUnavailable, match="does not fit SuperGlue"):
        SuperGlueMatcher(f"{sp},{sp}")  # SuperPoint's file where SuperGlue's belongs


def test_a_padded_batch_gives_the_same_assignment_as_each_sample_alone():
    torch.manual_seed(0)
    net = SuperGlue(SuperGlueConfig(gnn_layers=["self", "cross"] * 2)).eval()
    n0, n1, pad = 30, 25, 40

    def sample(n):
        return torch.rand(1, n, 2) * 200, torch.rand(1, n), torch.nn.functional.normalize(torch.randn(1, 256, n), dim=1)

    (k0, s0, d0), (k1, s1, d1) = sample(n0), sample(n1)
    size = torch.tensor([[256.0, 256.0]])
    with torch.no_grad():
        alone = net(k0, s0, d0, size, k1, s1, d1, size)

        def padded(k, s, d, n):
            return (torch.cat([k, torch.zeros(1, pad - n, 2)], 1), torch.cat([s, torch.zeros(1, pad - n)], 1),
                    torch.cat([d, torch.zeros(1, 256, pad - n)], 2), torch.arange(pad)[None] < n)

        pk0, ps0, pd0, m0 = padded(k0, s0, d0, n0)
        pk1, ps1, pd1, m1 = padded(k1, s1, d1, n1)
        batched = net(pk0, ps0, pd0, size, pk1, ps1, pd1, size, m0, m1)
    inner = batched[0][:n0, :n1]
    torch.testing.assert_close(inner, alone[0, :-1, :-1], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(batched[0, :n0, -1], alone[0, :-1, -1], atol=1e-4, rtol=1e-4)
    assert (batched[0, n0:-1, :n1] < -1000).all()  # padded rows carry no mass
