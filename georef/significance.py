"""How unlikely a set of agreeing measurements is by chance: the a-contrario number of false alarms.

A fit that k of n matches agree with, within a tolerance, could be a coincidence:
under the background hypothesis each match lands anywhere in the searched area,
and agrees with a given model with probability ``alpha``, the tolerance's share
of that area. The number of false alarms (Moisan and Stival's ORSA,
AC-RANSAC) bounds the expected number of models that chance alone would
support as well:

    NFA = (n - s) * C(n, k) * C(k, s) * alpha ** (k - s)

where ``s`` is the model's minimal sample. A fit is meaningful where NFA < 1:
the test scales with the number of matches, the tolerance, the image and the
area searched, where a fixed inlier count does not.
"""

from __future__ import annotations

import math


def log10_binomial(n: int, k: int) -> float:
    """log10 of C(n, k)."""
    if k < 0 or k > n:
        return -math.inf
    return (math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)) / math.log(10)


def log10_nfa(n: int, k: int, alpha: float, sample: int) -> float:
    """log10 of the number of false alarms of ``k`` agreeing measurements among ``n``.

    Args:
        n: measurements tried (matches, windows).
        k: those that agree with the model.
        alpha: probability that one measurement agrees by chance, in (0, 1].
        sample: measurements that determine the model (its minimal sample).

    Returns:
        log10(NFA); +inf where ``k`` does not exceed the sample.
    """
    if k <= sample or n <= sample:
        return math.inf
    alpha = min(max(alpha, 1e-300), 1.0)
    return (math.log10(n - sample) + log10_binomial(n, k) + log10_binomial(k, sample)
            + (k - sample) * math.log10(alpha))


def match_alpha(threshold_px: float, searched_area_px: float) -> float:
    """Chance that a random match lands within ``threshold_px`` of a model's prediction in the searched area."""
    return min(1.0, math.pi * threshold_px**2 / max(searched_area_px, 1.0))
