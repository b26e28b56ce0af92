from pathlib import Path

import numpy as np

from georef import geometry
from georef.benchmark.cases import Case, WarpSpec
from georef.benchmark.metrics import affine_text
from georef.benchmark.report import tile_lines

GRID = geometry.to_matrix(__import__("affine").Affine(10, 0, 500000, 0, -10, 6000000))
KEY = "m/auto/2 winter->summer"


def _case(tile: str, seed: int) -> Case:
    warp = WarpSpec().draw(np.random.default_rng(seed), 512, 512)
    return Case(f"{tile}/tile_0_{seed}:winter->summer", Path("t.tif"), Path("r.tif"), GRID @ np.linalg.inv(warp),
                512, 512, 10.0, group="winter->summer")


def _row(case: Case, east_m: float, north_m: float, accepted: bool = True) -> dict:
    estimate = geometry.translation(east_m, north_m) @ case.truth
    error_px = np.hypot(east_m, north_m) / case.metres_per_px
    return {"case": case.name, "matcher": "m", "model": "auto", "threshold": "2", "group": case.group,
            "estimate": affine_text(estimate, case.width, case.height), "error_px": str(error_px),
            "accepted": str(accepted), "total_s": "0.1", "estimated_ce90_px": "1.0"}


def test_a_tile_whose_estimates_share_an_offset_shows_it_beside_its_spread():
    a = [_case("A", i) for i in range(3)]
    b = [_case("B", i) for i in range(3)]
    rows = [_row(c, 0.0, 0.0) for c in a]
    # tile B, 10 m pixels: 6 m east and 4.5 m north (0.75 px), and one answer refused 20 px off
    rows += [_row(b[0], 6.0, 4.5), _row(b[1], 6.0, 4.5), _row(b[2], 200.0, 0.0, accepted=False)]
    lines = tile_lines(rows, a + b, [KEY])
    assert lines[0] == "## By tile"
    assert f"| {KEY} | A | 3 | 100% | 100% | 0 | **0** | 100% | 0.00 | +0.00 | +0.00 | 0.00 |" in lines
    # the refused case counts in the shares, not in the offset of the accepted estimates
    assert f"| {KEY} | B | 3 | 67% | 67% | 1 | **0** | 100% | 0.75 | +0.60 | -0.45 | 0.00 |" in lines


def test_one_tile_or_one_case_per_tile_has_no_section():
    one_tile = [_case("A", i) for i in range(3)]
    assert tile_lines([_row(c, 0.0, 0.0) for c in one_tile], one_tile, [KEY]) == []
    singles = [_case("A", 0), _case("B", 0)]
    assert tile_lines([_row(c, 0.0, 0.0) for c in singles], singles, [KEY]) == []
