"""Feature matchers behind one interface (:class:`Matcher`)."""

from __future__ import annotations

import functools
from typing import Callable

from georef.matchers.base import Matcher, Matches


def _xfeat(**kwargs) -> Matcher:
    from georef.matchers.xfeat import XFeatMatcher  # torch is imported only when needed

    return XFeatMatcher(**kwargs)


def _sift(**kwargs) -> Matcher:
    from georef.matchers.sift import SiftMatcher

    kwargs.pop("weights_path", None)
    kwargs.pop("device", None)
    return SiftMatcher(**kwargs)


def _loftr(**kwargs) -> Matcher:
    from georef.matchers.loftr import LoFTRMatcher

    return LoFTRMatcher(**kwargs)


def _superglue(**kwargs) -> Matcher:
    from georef.matchers.superglue import SuperGlueMatcher

    return SuperGlueMatcher(**kwargs)


def _lightglue(name: str) -> Callable[..., Matcher]:
    def factory(**kwargs) -> Matcher:
        from georef.matchers.lightglue import LightGlueMatcher

        return LightGlueMatcher(name, **kwargs)

    return factory


_FACTORIES: dict[str, Callable[..., Matcher]] = {
    "xfeat": _xfeat,
    "sift": _sift,
    **{name: _lightglue(name) for name in ("xfeat-lightglue", "aliked-lightglue", "disk-lightglue")},
    "superglue": _superglue,
    "loftr": _loftr,
}

#: Names accepted by :func:`create_matcher`.
MATCHERS: tuple[str, ...] = tuple(_FACTORIES)
#: One line per matcher for ``georef matchers``.
DESCRIPTIONS: dict[str, str] = {
    "xfeat": "XFeat keypoints, mutual nearest neighbour (weights: xfeat)",
    "sift": "OpenCV SIFT, ratio test (no weights)",
    "xfeat-lightglue": "XFeat keypoints + LighterGlue (weights: xfeat, xfeat_lighterglue)",
    "aliked-lightglue": "ALIKED-n16 + LightGlue (weights: aliked-n16, aliked_lightglue)",
    "disk-lightglue": "DISK + LightGlue (weights: disk-depth, disk_lightglue)",
    "superglue": "SuperPoint + SuperGlue (--weights superpoint_v1.pth,superglue_outdoor.pth)",
    "loftr": "LoFTR, dense (--weights outdoor_ds.ckpt)",
}
#: Matchers whose weights cannot be fetched: the user passes them with --weights.
USER_WEIGHTS: tuple[str, ...] = ("superglue", "loftr")


@functools.lru_cache(maxsize=8)
def create_matcher(name: str, weights_path: str | None = None, device: str = "cpu") -> Matcher:
    """Return a matcher by name; instances are cached so weights load once per process.

    Raises:
        ValueError: unknown name.
    """
    try:
        factory = _FACTORIES[name]
    except KeyError:
        raise ValueError(f"unknown matcher {name!r}; choose from {', '.join(MATCHERS)}") from None
    return factory(weights_path=weights_path, device=device)


__all__ = ["DESCRIPTIONS", "MATCHERS", "USER_WEIGHTS", "Matcher", "Matches", "create_matcher"]
