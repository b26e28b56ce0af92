import numpy as np
import pytest

from georef.pipeline import Measurements


def _windows(xs, ys, inliers=None, footprint=64.0):
    src = np.array([(x, y) for x in xs for y in ys], float)
    inliers = np.ones(len(src), bool) if inliers is None else inliers
    return Measurements(src, src, inliers, "refinement windows", (512.0, 512.0), -10.0, footprint)


def test_span_counts_the_windows_footprint_on_the_narrower_axis():
    two_columns = _windows([96, 128], range(32, 481, 32))
    assert two_columns.span() == pytest.approx((32 + 64) / 512)
    three_columns = _windows([96, 128, 160], range(32, 481, 32))
    assert three_columns.span() == pytest.approx((64 + 64) / 512)
    assert _windows(range(32, 481, 32), range(32, 481, 32)).span() == 1.0


def test_span_counts_only_inliers():
    m = _windows([32, 480], [32, 480], inliers=np.array([True, True, False, False]), footprint=0.0)
    assert m.span() == 0.0  # both inliers in one column
    assert _windows([32], [32], inliers=np.zeros(1, bool)).span() == 0.0
