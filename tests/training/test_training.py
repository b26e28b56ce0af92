import dataclasses
import re

import numpy as np
import pytest
import torch
from conftest import S2_SEASONS

from georef import geometry
from training.config import TrainConfig, load_config
from training.data import collate, ground_truth
from training.model import assignment_loss, deep_loss


def test_config_defaults_yaml_and_typed_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("matcher: disk-lightglue\nepochs: 3\n")
    for tile in ("T36UUA", "T35UNQ"):
        (tmp_path / "data" / tile).mkdir(parents=True)
    c = load_config(path, ["lr=5e-5", "train_tiles=T36UUA", "batch_size=4", "weights=null", f"data={tmp_path / 'data'}"])
    assert (c.matcher, c.epochs, c.lr, c.train_tiles, c.batch_size) == ("disk-lightglue", 3, 5e-5, ["T36UUA"], 4)
    assert c.val_tiles == TrainConfig().val_tiles
    with pytest.raises(ValueError, match="unknown config key 'epoch'"):
        load_config(None, ["epoch=3"])
    with pytest.raises(ValueError, match="batch_size='many': expected int"):
        load_config(None, ["batch_size=many"])
    with pytest.raises(ValueError, match="no training data"):
        load_config(path, [])


@pytest.mark.parametrize("override, message", [
    ("epochs=-1", "epochs=-1: must be an integer >= 1"),  # found after minutes of caching features
    ("batch_size=0", "batch_size=0: must be an integer >= 1"),
    ("lr=-1", "lr=-1.0: must be a finite number > 0"),  # torch's traceback
    ("matcher=orb", "matcher='orb': must be one of aliked-lightglue"),  # KeyError
    ("val_tiles=T99XXX", "val_tiles=['T99XXX']: T99XXX is not a tile of"),
    ("val_tiles=T36UUA", "tile T36UUA is in the training split too"),
    ("pairings=winter", "takes season pairs target:reference"),
    ("device=foo", "device 'foo' is not one of auto, cpu"),  # torch's RuntimeError
], ids=lambda v: v if "=" in v else "")
def test_config_values_are_checked_before_anything_loads(tmp_path, override, message):
    for tile in ("T36UUA", "T35UNQ"):
        (tmp_path / tile).mkdir()
    with pytest.raises(ValueError, match=re.escape(message)):
        load_config(None, [f"data={tmp_path}", "train_tiles=T36UUA", override])


def test_the_command_names_bad_yaml_and_bad_data_in_one_line(tmp_path, capsys):
    from training.__main__ import main

    (tmp_path / "bad.yaml").write_text("epochs: [1\n")
    assert main(["--config", str(tmp_path / "bad.yaml")]) == 2
    assert "bad.yaml: not YAML" in capsys.readouterr().err
    # georef's own errors, raised once the run has begun, were tracebacks.
    (tmp_path / "T36UUA").mkdir(), (tmp_path / "T35UNQ").mkdir()
    assert main([f"data={tmp_path}", "train_tiles=T36UUA", "--evaluate", "pretrained"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("georef-train: error:") and "not an s2-seasons folder" in err and len(err.splitlines()) == 1


def test_ground_truth_from_a_known_warp():
    rng = np.random.default_rng(0)
    kpts0 = rng.uniform(0, 200, (50, 2))
    warp = geometry.translation(10, -5)
    kpts1 = np.vstack([kpts0[:40] + [10, -5] + rng.normal(0, 0.5, (40, 2)), [[150, 150], [-3, 5]]])
    matches, un0, un1 = ground_truth(kpts0, kpts1, warp, (200, 200), (200, 200), 3.0, 6.0)
    assert sorted(matches[:, 0]) == list(range(40)) and (matches[:, 1] == matches[:, 0]).all()
    assert not un0[:40].any() and not un1[:40].any()
    # the last ten of image 0 land out of view or far from any keypoint of image 1
    moved = kpts0[40:] + [10, -5]
    far = np.linalg.norm(moved[:, None] - kpts1[None], axis=2).min(1) > 6
    outside = (moved < 0).any(1) | (moved > 199).any(1)
    np.testing.assert_array_equal(un0[40:], far | outside)


def _sample(n0, n1, k, seed):
    from training.data import Sample

    g = torch.Generator().manual_seed(seed)

    def feats(n):
        return {"keypoints": torch.rand(n, 2, generator=g) * 100, "descriptors": torch.randn(n, 8, generator=g),
                "scores": torch.rand(n, generator=g)}

    matches = torch.stack([torch.arange(k), torch.randperm(n1, generator=g)[:k]], 1)
    un0 = torch.zeros(n0, dtype=torch.bool)
    un0[k:] = True
    un1 = torch.ones(n1, dtype=torch.bool)
    un1[matches[:, 1]] = False
    return Sample(feats(n0), feats(n1), (100, 100), (100, 100), matches, un0, un1)


def test_padded_batch_keeps_each_samples_ground_truth():
    samples = [_sample(10, 7, 5, 0), _sample(6, 12, 4, 1)]
    batch = collate(samples)
    assert batch["keypoints0"].shape == (2, 10, 2) and batch["keypoints1"].shape == (2, 12, 2)
    assert batch["mask0"].sum(1).tolist() == [10, 6] and batch["mask1"].sum(1).tolist() == [7, 12]
    assert batch["gt_matches"].sum((1, 2)).tolist() == [5, 4]
    assert not (batch["gt_matches"] & ~(batch["mask0"][:, :, None] & batch["mask1"][:, None])).any()
    assert not (batch["unmatched1"] & ~batch["mask1"]).any()


def test_loss_prefers_the_true_assignment():
    batch = collate([_sample(6, 6, 4, 0)])
    good = torch.full((1, 7, 7), -10.0)
    for i, j in zip(*torch.nonzero(batch["gt_matches"][0], as_tuple=True)):
        good[0, i, j] = -0.01
    good[0, :-1, -1] = torch.where(batch["unmatched0"][0], -0.01, -10.0)
    good[0, -1, :-1] = torch.where(batch["unmatched1"][0], -0.01, -10.0)
    bad = good.flip(1)
    assert assignment_loss(good, batch) < 0.05 < assignment_loss(bad, batch)
    assert torch.isclose(deep_loss([good, bad], batch, 0.5), (assignment_loss(good, batch)
                                                              + assignment_loss(bad, batch)) / 2)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    return load_config(None, [f"out={out}", f"data={S2_SEASONS}", "max_keypoints=128", "variants=1", "batch_size=2", "epochs=1",
                              "lr=1e-3", "val_limit=1", "train_tiles=T36UUA", "pairings=winter:summer"])


def _truncated(sample, keep0: int, keep1: int):
    """The sample with only its first keypoints on each side: padded when batched with full ones."""
    kept = (sample.matches[:, 0] < keep0) & (sample.matches[:, 1] < keep1)
    return dataclasses.replace(
        sample, features0={k: v[:keep0] for k, v in sample.features0.items()},
        features1={k: v[:keep1] for k, v in sample.features1.items()}, matches=sample.matches[kept],
        unmatched0=sample.unmatched0[:keep0], unmatched1=sample.unmatched1[:keep1])


@pytest.mark.realdata
def test_padded_batch_equals_the_per_sample_losses_and_trains_with_finite_gradients(tiny):
    from training.train import Trainer

    trainer = Trainer(tiny, progress=False)
    first, second, third = trainer.training_samples()[:3]
    n0, n1 = len(first.features0["keypoints"]), len(first.features1["keypoints"])
    samples = [_truncated(first, n0 - 30, n1), second, _truncated(third, n0, n1 - 17)]  # padded on both sides
    batch = collate(samples)
    assert not batch["mask0"].all() and not batch["mask1"].all()
    trainer.model.eval()  # no dropout: the two must agree exactly
    with torch.no_grad():
        alone = [deep_loss(trainer.model(collate([s])), collate([s]), 0.5) for s in samples]
        together = torch.stack([deep_loss([la[i:i + 1] for la in trainer.model(batch)],
                                          {k: v[i:i + 1] for k, v in batch.items()}, 0.5) for i in range(3)])
    torch.testing.assert_close(together, torch.stack(alone), atol=1e-4, rtol=1e-4)
    trainer.model.train()
    deep_loss(trainer.model(batch), batch, 0.5).backward()
    grads = [p.grad for p in trainer.model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


@pytest.mark.realdata
def test_a_few_steps_lower_the_loss_and_the_checkpoint_loads_in_the_core(tiny):
    from georef.matchers.lightglue import LightGlueMatcher
    from training.train import Trainer

    trainer = Trainer(tiny, progress=False)
    samples = trainer.training_samples()
    assert len(samples) == 10  # 10 subtiles x 1 pairing x 1 variant
    fixed = samples[:2]
    losses = [trainer.step(fixed) for _ in range(6)]
    assert all(np.isfinite(losses)) and losses[-1] < losses[0]
    path = trainer.save_weights("smoke")
    assert (path.parent / "smoke.yaml").is_file()
    core = LightGlueMatcher("aliked-lightglue", path)  # what `georef align --weights` does
    for name, value in trainer.model.net.state_dict().items():
        torch.testing.assert_close(core.lightglue.state_dict()[name], value)


@pytest.mark.realdata
@pytest.mark.slow
def test_fit_validates_resumes_and_keeps_the_best(tiny):
    from training.train import Trainer

    result = Trainer(tiny, progress=False).fit()
    assert [h["epoch"] for h in result["history"]] == [0, 1]
    assert (tiny_path := __import__("pathlib").Path(tiny.out) / "last.pt").is_file()
    from dataclasses import replace

    again = Trainer(replace(tiny, epochs=2), progress=False).fit()  # resumes after epoch 1
    assert [h["epoch"] for h in again["history"]] == [0, 1, 2] and tiny_path.is_file()
    assert (tiny_path.parent / "checkpoints" / "best.pth").is_file()


def test_the_same_machinery_fine_tunes_superglue(tmp_path, scene):
    """SuperGlue from checkpoints of the official layout (generated: the real ones are not reachable)."""
    from matchers.test_superglue import (
        generated_state,
        official_superglue_layout,
        official_superpoint_layout,
    )

    from georef import raster
    from training.data import Sample
    from training.model import FrozenFeatures, TrainableMatcher, build_core

    torch.save(generated_state(official_superpoint_layout(), 0), tmp_path / "superpoint_v1.pth")
    torch.save(generated_state(official_superglue_layout(), 1), tmp_path / "superglue_outdoor.pth")
    core = build_core("superglue", str(tmp_path), max_keypoints=128)
    features = FrozenFeatures("superglue", core)
    data = scene.data[:, 600:856, 600:856]
    image = raster.normalise(data, np.ones(data.shape[1:], bool))
    # shifted by whole 8 px cells: even random convolutions then detect the same points
    f0, f1 = features(image[:200, :200]), features(image[16:216, 8:208])
    matches, un0, un1 = ground_truth(f0["keypoints"].double().numpy(), f1["keypoints"].double().numpy(),
                                     geometry.translation(-8, -16), (200, 200), (200, 200), 3.0, 6.0)
    assert len(matches) > 5
    sample = Sample(f0, f1, (200, 200), (200, 200), torch.from_numpy(matches), torch.from_numpy(un0),
                    torch.from_numpy(un1))
    model = TrainableMatcher(core)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    batch = collate([sample, sample])
    losses = []
    for _ in range(4):
        optimizer.zero_grad()
        loss = deep_loss(model(batch), batch, 0.5)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert all(np.isfinite(losses)) and losses[-1] < losses[0]
    assert set(model.official_state_dict()) == set(official_superglue_layout())
