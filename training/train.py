"""The training loop: batches, checkpoints, resume, per-epoch validation with the true error."""

from __future__ import annotations

import copy
import json
import logging
import random
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from georef.options import AlignOptions, RefineOptions
from training.config import TrainConfig, save_config
from training.data import Sample, build_samples, collate, split_pairs
from training.model import FrozenFeatures, TrainableMatcher, build_core, deep_loss

log = logging.getLogger(__name__)


class Trainer:
    """Fine-tunes a core matcher's matching network on cached features of a frozen extractor.

    Args:
        config: the resolved configuration.
        progress: show progress bars.
    """

    def __init__(self, config: TrainConfig, progress: bool = True) -> None:
        config.validate()
        self.config = config
        self.progress = progress
        torch.manual_seed(config.seed)
        self.core = build_core(config.matcher, config.weights, config.max_keypoints, config.device)
        self.features = FrozenFeatures(config.matcher, self.core)
        self.model = TrainableMatcher(self.core, config.train_layers)
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
        self.out = Path(config.out)
        self.epoch = 0
        self.best: dict | None = None
        self.history: list[dict] = []

    # -- data ---------------------------------------------------------------------------------
    def training_samples(self) -> list[Sample]:
        pairs = split_pairs(self.config.data, self.config.train_tiles, self.config.pairings)
        return build_samples(pairs, self.features, self.config, self.out / "cache", self.progress)

    def _to_device(self, batch: dict) -> dict:
        return {k: v.to(self.config.device) for k, v in batch.items()}

    # -- steps --------------------------------------------------------------------------------
    def step(self, samples: list[Sample]) -> float:
        """One optimiser step on a padded batch (one forward and backward pass)."""
        batch = self._to_device(collate(samples))
        self.optimizer.zero_grad(set_to_none=True)
        loss = deep_loss(self.model(batch), batch, self.config.balance)
        loss.backward()
        self.optimizer.step()
        return float(loss.detach())

    def per_sample_step(self, samples: list[Sample]) -> float:
        """The study's approach, kept as the baseline: one sample at a time, gradients accumulated."""
        self.optimizer.zero_grad(set_to_none=True)
        total = 0.0
        for sample in samples:
            batch = self._to_device(collate([sample]))
            loss = deep_loss(self.model(batch), batch, self.config.balance) / len(samples)
            loss.backward()
            total += float(loss.detach())
        self.optimizer.step()
        return total

    # -- checkpoints --------------------------------------------------------------------------
    def save_weights(self, name: str) -> Path:
        """The matcher's weights in the released layout, with the resolved config beside them."""
        folder = self.out / "checkpoints"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{name}.pth"
        tmp = path.with_suffix(".part")
        torch.save(self.model.official_state_dict(), tmp)
        tmp.replace(path)
        save_config(self.config, folder / f"{name}.yaml")
        return path

    def save_state(self) -> None:
        """Everything needed to resume: weights, optimiser, epoch, history, RNG states."""
        self.out.mkdir(parents=True, exist_ok=True)
        state = {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(), "epoch": self.epoch,
                 "best": self.best, "history": self.history, "torch_rng": torch.get_rng_state(),
                 "python_rng": random.getstate()}
        tmp = self.out / "last.part"
        torch.save(state, tmp)
        tmp.replace(self.out / "last.pt")
        save_config(self.config, self.out / "config.yaml")

    def resume(self) -> bool:
        path = self.out / "last.pt"
        if not path.is_file():
            return False
        state = torch.load(path, weights_only=True)  # tensors and plain values: a tampered file cannot run code
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.epoch, self.best, self.history = state["epoch"], state["best"], state["history"]
        torch.set_rng_state(state["torch_rng"])
        random.setstate(state["python_rng"])
        log.info("resumed from %s after epoch %d", path, self.epoch)
        return True

    # -- validation ---------------------------------------------------------------------------
    def validate(self, weights: Path | None, name: str) -> dict:
        """True error on the validation tiles with the benchmark's cases (raw matcher and default pipeline)."""
        return evaluate(self.config, weights, self.out / "val" / name, progress=self.progress)

    # -- loop ---------------------------------------------------------------------------------
    def fit(self) -> dict:
        """Train for ``config.epochs`` epochs (resuming if a previous run stopped), validating each."""
        self.resume()
        samples = self.training_samples()
        rng = random.Random(self.config.seed)
        if self.best is None and self.epoch == 0:
            self.best = {"epoch": 0, **self.validate(None, "pretrained")}
            self.history.append(self.best)
            self.save_weights("best")  # until an epoch beats them, the pretrained weights are the best
        while self.epoch < self.config.epochs:
            order = list(range(len(samples)))
            rng.seed(self.config.seed + self.epoch)
            rng.shuffle(order)
            batches = [order[i:i + self.config.batch_size] for i in range(0, len(order), self.config.batch_size)]
            losses = []
            start = time.perf_counter()
            bar = tqdm(batches, desc=f"epoch {self.epoch + 1}", unit="batch", disable=not self.progress)
            for idx in bar:
                losses.append(self.step([samples[i] for i in idx]))
                bar.set_postfix(loss=f"{losses[-1]:.3f}")
            self.epoch += 1
            weights = self.save_weights(f"epoch_{self.epoch:03d}")
            entry = {"epoch": self.epoch, "loss": float(np.mean(losses)), "seconds": time.perf_counter() - start,
                     **self.validate(weights, f"epoch_{self.epoch:03d}")}
            self.history.append(entry)
            log.info("epoch %d: %s", self.epoch, json.dumps(entry))
            if _better(entry, self.best):
                self.best = entry
                self.save_weights("best")
            self.save_state()
        (self.out / "history.json").write_text(json.dumps(self.history, indent=1))
        return {"best": self.best, "history": self.history}


def _better(entry: dict, best: dict | None) -> bool:
    """More raw pairs within 1 px; ties broken by the median error."""
    if best is None:
        return True
    return (entry["raw_within_1px"], -entry["raw_median_px"]) > (best["raw_within_1px"], -best["raw_median_px"])


def evaluate(config: TrainConfig, weights: Path | str | None, out_dir: Path, progress: bool = False) -> dict:
    """The benchmark's true error on the validation tiles, for given matcher weights (None: pretrained).

    Two settings: the raw matcher (no guided pass, no refinement: what training changes) and the
    default pipeline.
    """
    from georef.benchmark.cases import CaseSpec, build_cases
    from georef.benchmark.run import run_benchmark

    target, reference = config.val_pairing.split(":")
    spec = CaseSpec(seasons=((target, reference),), tiles=tuple(config.val_tiles), seed=config.seed,
                    limit=config.val_limit or None)
    cases = build_cases(config.data, out_dir / "cases", spec)
    weights_arg = str(weights) if weights else config.weights
    results = {}
    raw = AlignOptions(guided_radius_px=0, refine=RefineOptions(enabled=False))
    for label, options in (("raw", raw), ("default", AlignOptions())):
        summary = run_benchmark(cases, [config.matcher], out_dir / label, options=replace(options,
                                weights=weights_arg), progress=progress)
        entry = next(iter(summary["settings"].values()))
        results.update({f"{label}_within_1px": entry["within_1px"], f"{label}_within_3px": entry["within_3px"],
                        f"{label}_median_px": entry["median_px"], f"{label}_median_inliers": entry["median_inliers"],
                        f"{label}_wrong_but_accepted": entry["wrong_but_accepted"]})
    return results


def measure_throughput(trainer: Trainer, samples: list[Sample], batches: int = 3) -> dict:
    """Samples per second of padded batches against the per-sample loop, same batches, same process.

    The model and optimiser are restored afterwards, so measuring leaves training unchanged.
    """
    saved = copy.deepcopy(trainer.model.state_dict()), copy.deepcopy(trainer.optimizer.state_dict())
    size = trainer.config.batch_size
    chosen = [samples[i * size:(i + 1) * size] for i in range(batches)]
    timings = {}
    for label, step in (("batched", trainer.step), ("per_sample", trainer.per_sample_step)):
        step(chosen[0])  # warm-up
        start = time.perf_counter()
        for batch in chosen:
            step(batch)
        timings[label] = sum(len(b) for b in chosen) / (time.perf_counter() - start)
    trainer.model.load_state_dict(saved[0])
    trainer.optimizer.load_state_dict(saved[1])
    return {"batched_samples_per_s": timings["batched"], "per_sample_samples_per_s": timings["per_sample"],
            "speedup": timings["batched"] / timings["per_sample"], "batch_size": size}
