import math

import pytest

from georef.refine import window_log_nfa
from georef.significance import log10_nfa, match_alpha


def test_log10_nfa_is_the_orsa_formula():
    n, k, alpha, sample = 40, 9, 0.01, 2
    expected = math.log10((n - sample) * math.comb(n, k) * math.comb(k, sample) * alpha ** (k - sample))
    assert log10_nfa(n, k, alpha, sample) == pytest.approx(expected, abs=1e-9)


def test_log10_nfa_is_infinite_without_measurements_beyond_the_sample():
    assert log10_nfa(40, 2, 0.01, 2) == math.inf
    assert log10_nfa(2, 2, 0.01, 2) == math.inf


def test_more_agreeing_matches_are_less_likely_by_chance():
    alpha = match_alpha(2.0, 512 * 512)
    values = [log10_nfa(300, k, alpha, 2) for k in (4, 8, 16, 32)]
    assert all(b < a for a, b in zip(values, values[1:]))
    # A wider tolerance makes the same inliers weaker evidence.
    assert log10_nfa(300, 8, match_alpha(4.0, 512 * 512), 2) > values[1]


def test_windows_agreeing_by_chance_are_not_significant():
    # 64 px windows of unrelated content do not put a third of themselves within 1 px of a fit;
    # 16 of 200 could be chance.
    assert window_log_nfa(200, 60, 1.0, 64, "affine") < -20
    assert window_log_nfa(200, 16, 1.0, 64, "affine") > 0


def test_windows_count_in_whole_groups_of_four():
    # Neighbouring windows share pixels. Fractional counts (11 windows as 2.75) were tried and accepted
    # a wrong answer (docs/benchmarks.md): 8 to 11 agreeing windows weigh alike.
    assert window_log_nfa(40, 11, 1.0, 64, "similarity") == window_log_nfa(40, 8, 1.0, 64, "similarity")
    assert window_log_nfa(40, 12, 1.0, 64, "similarity") < window_log_nfa(40, 11, 1.0, 64, "similarity")
