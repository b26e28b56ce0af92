"""Cross-season alignment on real Sentinel-2 subtiles (../shared/data/s2-seasons)."""

import pytest

from georef import estimate_alignment
from georef.benchmark.cases import make_warp_case, s2_seasons_pairs
from georef.benchmark.metrics import corner_error

from conftest import S2_SEASONS

pytestmark = pytest.mark.realdata


@pytest.mark.parametrize("tile", ["T35UNQ", "T36UUA", "T36UUU"])
def test_winter_to_summer_within_three_pixels(tmp_path, tile):
    pairs = s2_seasons_pairs(S2_SEASONS, [("winter", "summer")], [tile])[:2]
    for pair in pairs:
        case = make_warp_case(pair, tmp_path)
        result = estimate_alignment(case.target, case.reference)
        error_px = corner_error(result.geotransform, case.truth, case.width, case.height) / 10
        assert error_px < 3, f"{pair.name}: {error_px:.2f} px"
        assert result.quality.passed
