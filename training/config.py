"""Training configuration: defaults on the class, small YAML files, ``key=value`` overrides."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path

import yaml


@dataclass
class TrainConfig:
    """Everything a training run depends on; saved, resolved, beside each checkpoint.

    Attributes:
        matcher: core matcher fine-tuned: 'aliked-lightglue', 'disk-lightglue' or 'superglue'.
        weights: starting matcher weights; default the registry's pretrained file
            (for superglue: ``SP.pth,SG.pth``).
        data: an s2-seasons folder (required: ``data=PATH`` or in the YAML file).
        train_tiles, val_tiles: tiles of each split (no tile in both).
        pairings: season pairs used for training, target:reference.
        val_pairing: the season pair of the validation (true error per epoch).
        variants: random warps cached per training pair (features are computed once per variant).
        max_keypoints: keypoints per image.
        max_shift_px, max_rotation_deg, max_scale, max_perspective: ranges of the random warp.
        photometric: brightness/contrast/gamma/noise augmentation of the warped image.
        match_px: a keypoint whose warped position is this close to one of the other image is a match.
        unmatched_px: farther than this from every keypoint, or out of view: unmatchable.
        batch_size, epochs, lr, weight_decay: optimisation.
        train_layers: LightGlue layers trained, counted from the last (0 = all).
        balance: weight of matches against unmatchable points in the loss.
        val_limit: validation pairs (0 = all of the validation tiles).
        out: output folder (checkpoints, configs, logs).
        seed: random seed.
        device: torch device.
    """

    matcher: str = "aliked-lightglue"
    weights: str | None = None
    data: str | None = None
    train_tiles: list[str] = field(default_factory=lambda: ["T36UUA", "T36UUU"])
    val_tiles: list[str] = field(default_factory=lambda: ["T35UNQ"])
    pairings: list[str] = field(default_factory=lambda: ["winter:summer", "winter:summer_prev", "summer_prev:summer"])
    val_pairing: str = "winter:summer"
    variants: int = 4
    max_keypoints: int = 1024
    max_shift_px: float = 24.0
    max_rotation_deg: float = 3.0
    max_scale: float = 0.05
    max_perspective: float = 2e-4
    photometric: bool = True
    match_px: float = 3.0
    unmatched_px: float = 6.0
    batch_size: int = 8
    epochs: int = 10
    lr: float = 1e-4
    weight_decay: float = 0.0
    train_layers: int = 0
    balance: float = 0.5
    val_limit: int = 0
    out: str = "runs/aliked_lightglue"
    seed: int = 0
    device: str = "cpu"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def validate(self) -> None:
        """Raise ValueError naming the first setting out of range, before any model or data is loaded."""
        from georef.matchers import resolve_device

        def check(ok: bool, key: str, text: str) -> None:
            if not ok:
                raise ValueError(f"{key}={getattr(self, key)!r}: {text}")

        check(self.matcher in TRAINABLE, "matcher", f"must be one of {', '.join(TRAINABLE)}")
        for key in ("variants", "max_keypoints", "batch_size", "epochs"):
            check(isinstance(getattr(self, key), int) and getattr(self, key) >= 1, key, "must be an integer >= 1")
        for key in ("train_layers", "val_limit", "seed"):
            check(isinstance(getattr(self, key), int) and getattr(self, key) >= 0, key, "must be an integer >= 0")
        for key in ("max_shift_px", "max_rotation_deg", "max_scale", "max_perspective", "weight_decay", "balance"):
            check(math.isfinite(getattr(self, key)) and getattr(self, key) >= 0, key, "must be a finite number >= 0")
        for key in ("lr", "match_px"):
            check(math.isfinite(getattr(self, key)) and getattr(self, key) > 0, key, "must be a finite number > 0")
        check(self.unmatched_px >= self.match_px, "unmatched_px", f"must be >= match_px ({self.match_px})")
        check(self.balance <= 1, "balance", "must be <= 1")
        check(self.max_scale < 1, "max_scale", "must be < 1")
        for key in ("pairings", "val_pairing"):
            values = getattr(self, key) if key == "pairings" else [self.val_pairing]
            check(bool(values) and all(p.count(":") == 1 and all(p.split(":")) for p in values), key,
                  "takes season pairs target:reference, e.g. winter:summer")
        both = set(self.train_tiles) & set(self.val_tiles)
        check(not both, "val_tiles", f"tile {sorted(both)[0] if both else ''} is in the training split too")
        check(bool(self.data) and Path(self.data).is_dir(), "data", "must be an s2-seasons folder")
        for key in ("train_tiles", "val_tiles"):
            missing = [t for t in getattr(self, key) if not (Path(self.data) / t).is_dir()]
            check(bool(getattr(self, key)) and not missing, key,
                  f"{missing[0]} is not a tile of {self.data}" if missing else "needs a tile")
        resolve_device(self.device)  # InvalidOption, a ValueError, names a device torch cannot run on


#: Matchers the training wraps (those with learned matching weights).
TRAINABLE = ("aliked-lightglue", "disk-lightglue", "superglue")


def _coerce(name: str, text: str, current):
    """A ``key=value`` override's value, typed like the default it replaces."""
    value = yaml.safe_load(text)
    if isinstance(current, float) and isinstance(value, str):  # YAML 1.1 reads 5e-5 as a string
        try:
            value = float(text)
        except ValueError:
            pass
    if isinstance(current, list) and isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(current, float) and isinstance(value, int):
        return float(value)
    if current is not None and value is not None and not isinstance(value, type(current)):
        raise ValueError(f"{name}={text!r}: expected {type(current).__name__}")
    return value


def load_config(path: str | Path | None = None, overrides: list[str] = ()) -> TrainConfig:
    """Defaults, then the YAML file, then ``key=value`` overrides.

    Raises:
        ValueError: an unknown key or a value of the wrong type.
    """
    config = TrainConfig()
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    try:
        values = yaml.safe_load(Path(path).read_text()) or {} if path else {}
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not YAML ({' '.join(str(exc).split())})") from None
    if not isinstance(values, dict):
        raise ValueError(f"{path}: holds a {type(values).__name__}, not key: value lines")
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep:
            raise ValueError(f"override {item!r} is not key=value")
        values[key.strip()] = _coerce(key, text, getattr(config, key.strip(), None))
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown config key {unknown[0]!r}; known: {', '.join(sorted(known))}")
    config = dataclasses.replace(config, **values)
    if not config.data:
        raise ValueError("no training data: give the s2-seasons folder as data=PATH (or data: in the config file)")
    config.validate()
    return config


def save_config(config: TrainConfig, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
