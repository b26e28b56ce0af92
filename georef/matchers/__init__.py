"""Feature matchers behind one interface (:class:`Matcher`).

The names, descriptions and factories here import nothing heavy; a matcher's
module (and torch with it) is imported when the matcher is created.
"""

from __future__ import annotations

import functools
import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from georef.errors import InvalidOption

if TYPE_CHECKING:
    from georef.matchers.base import Matcher, Matches


@dataclass(frozen=True)
class MatcherInfo:
    """A matcher of the registry.

    Attributes:
        name: what ``matcher`` options accept.
        description: one line for listings.
        factory: ``module:Class`` that builds it.
        weights: ``"registry"`` (fetched and cached), ``"user"`` (the user passes them) or ``"none"``.
        variant: first argument of the factory, where one class builds several matchers.
    """

    name: str
    description: str
    factory: str
    weights: str
    variant: str | None = None


_INFO = [
    MatcherInfo("xfeat", "XFeat keypoints, mutual nearest neighbour (weights: xfeat)",
                "georef.matchers.xfeat:XFeatMatcher", "registry"),
    MatcherInfo("sift", "OpenCV SIFT, ratio test (no weights)", "georef.matchers.sift:SiftMatcher", "none"),
    MatcherInfo("xfeat-lightglue", "XFeat keypoints + LighterGlue (weights: xfeat, xfeat_lighterglue)",
                "georef.matchers.lightglue:LightGlueMatcher", "registry", "xfeat-lightglue"),
    MatcherInfo("aliked-lightglue", "ALIKED-n16 + LightGlue (weights: aliked-n16, aliked_lightglue)",
                "georef.matchers.lightglue:LightGlueMatcher", "registry", "aliked-lightglue"),
    MatcherInfo("disk-lightglue", "DISK + LightGlue (weights: disk-depth, disk_lightglue)",
                "georef.matchers.lightglue:LightGlueMatcher", "registry", "disk-lightglue"),
    MatcherInfo("superglue", "SuperPoint + SuperGlue (weights: superpoint_v1.pth,superglue_outdoor.pth)",
                "georef.matchers.superglue:SuperGlueMatcher", "user"),
    MatcherInfo("loftr", "LoFTR, dense (weights: outdoor_ds.ckpt)", "georef.matchers.loftr:LoFTRMatcher", "user"),
]
REGISTRY: dict[str, MatcherInfo] = {m.name: m for m in _INFO}
#: Names accepted by :func:`create_matcher`.
MATCHERS: tuple[str, ...] = tuple(REGISTRY)
#: One line per matcher for ``georef matchers``.
DESCRIPTIONS: dict[str, str] = {m.name: m.description for m in _INFO}
#: Matchers whose weights cannot be fetched: the user passes them.
USER_WEIGHTS: tuple[str, ...] = tuple(m.name for m in _INFO if m.weights == "user")


def resolve_device(device: str) -> str:
    """The torch device ``device`` names: ``auto`` is CUDA where torch sees a GPU, else the CPU.

    Raises:
        InvalidOption: not a device name, or a CUDA device torch does not see.
    """
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        parsed = torch.device(device)
    except RuntimeError:
        parsed = None
    if parsed is None or parsed.type not in ("cpu", "cuda", "mps"):
        raise InvalidOption(f"{{param:device}} {device!r} is not one of auto, cpu, cuda, cuda:N, mps")
    if parsed.type == "cuda" and (parsed.index or 0) >= torch.cuda.device_count():
        raise InvalidOption(f"{{param:device}} {device}: torch sees {torch.cuda.device_count()} CUDA devices here; "
                            "use auto or cpu")
    if parsed.type == "mps" and not torch.backends.mps.is_available():
        raise InvalidOption(f"{{param:device}} {device}: torch sees no Apple GPU here; use auto or cpu")
    return device


@functools.lru_cache(maxsize=8)
def create_matcher(name: str, weights_path: str | None = None, device: str = "cpu") -> "Matcher":
    """Return a matcher by name; instances are cached so weights load once per process.

    Raises:
        InvalidOption: unknown name, or weights given to a matcher that takes none.
        WeightsUnavailable: the weights cannot be found or do not fit.
    """
    info = REGISTRY.get(name)
    if info is None:
        raise InvalidOption(f"{{param:matcher}} {name!r} is not one of {', '.join(MATCHERS)}")
    if info.weights == "none" and weights_path is not None:
        raise InvalidOption(f"{{param:weights}} does not apply to {name}, which uses no learned weights")
    from georef import threads

    threads.apply()
    module, _, cls = info.factory.partition(":")
    factory = getattr(importlib.import_module(module), cls)
    args = () if info.variant is None else (info.variant,)
    kwargs = {} if info.weights == "none" else {"weights_path": weights_path, "device": resolve_device(device)}
    return factory(*args, **kwargs)


def __getattr__(name: str):
    """``Matcher`` and ``Matches`` are imported (with torch) on first use."""
    if name in ("Matcher", "Matches"):
        from georef.matchers import base

        return getattr(base, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["DESCRIPTIONS", "MATCHERS", "REGISTRY", "USER_WEIGHTS", "Matcher", "Matches", "create_matcher"]
