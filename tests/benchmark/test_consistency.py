from pathlib import Path

import numpy as np
import pytest

from georef import geometry
from georef.benchmark.cases import Case, WarpSpec
from georef.benchmark.consistency import file_offsets, parse_estimate, season_consistency
from georef.benchmark.metrics import affine_text
from georef.benchmark.report import consistency_lines

GRID = geometry.to_matrix(__import__("affine").Affine(10, 0, 500000, 0, -10, 6000000))


def _case(group: str, seed: int) -> Case:
    warp = WarpSpec().draw(np.random.default_rng(seed), 512, 512)
    return Case(f"T1/tile_0_0:{group}", Path("t.tif"), Path("r.tif"), GRID @ np.linalg.inv(warp), 512, 512, 10.0,
                group=group)


def _rows(cases: list[Case], data_offsets: dict[str, tuple[float, float]]) -> list[dict]:
    """Estimates that are exact up to each season pair's offset in the data (map units)."""
    rows = []
    for case in cases:
        estimate = geometry.translation(*data_offsets[case.group]) @ case.truth
        rows.append({"case": case.name, "matcher": "m", "model": "auto", "threshold": "2",
                     "estimate": affine_text(estimate, case.width, case.height)})
    return rows


def test_estimate_text_round_trips():
    m = _case("a->b", 0).truth
    np.testing.assert_allclose(parse_estimate(affine_text(m, 512, 512)), m, rtol=1e-11)


def test_offsets_that_compose_close_the_loop_and_are_reported_as_the_data_offset():
    cases = [_case(g, i) for i, g in enumerate(("winter->summer", "winter->prev", "prev->summer"))]
    # map units (metres): winter is 5 m east, 3 m south of prev; prev 2 m west of summer
    offsets = {"winter->prev": (5.0, -3.0), "prev->summer": (-2.0, 0.0), "winter->summer": (3.0, -3.0)}
    found, closures = season_consistency(_rows(cases, offsets), cases)
    (closure,) = closures
    assert closure.loop == "winter->prev->summer" and closure.cases == 1
    assert closure.median_px < 1e-6
    by_group = {o.group: o for o in found}
    # 10 m pixels, y down: 3 m east and 3 m south is (+0.3, +0.3) px
    assert by_group["winter->summer"].x_px == pytest.approx(0.3, abs=1e-6)
    assert by_group["winter->summer"].y_px == pytest.approx(0.3, abs=1e-6)
    assert by_group["prev->summer"].x_px == pytest.approx(-0.2, abs=1e-6)


def test_an_estimate_off_by_a_pixel_opens_the_loop_by_a_pixel():
    cases = [_case(g, i) for i, g in enumerate(("winter->summer", "winter->prev", "prev->summer"))]
    offsets = {"winter->prev": (0.0, 0.0), "prev->summer": (0.0, -5.0), "winter->summer": (10.0, -5.0)}
    _, (closure,) = season_consistency(_rows(cases, offsets), cases)
    assert closure.median_px == pytest.approx(1.0, abs=1e-6)
    text = "\n".join(consistency_lines(_rows(cases, offsets), cases, ["m/auto/2 winter->summer"]))
    assert "## Season consistency" in text and "| m/auto/2 | T1 | winter->prev->summer | 1 | 1.00 | - | (+1.00, +0.50) | (+0.00, +0.50) |" in text


@pytest.mark.parametrize("estimate_px, within", [(0.5, 0.0), (0.6, 1.0)])
def test_a_closure_is_judged_by_the_three_estimates_in_quadrature(estimate_px, within):
    cases = [_case(g, i) for i, g in enumerate(("winter->summer", "winter->prev", "prev->summer"))]
    offsets = {"winter->prev": (0.0, 0.0), "prev->summer": (0.0, -5.0), "winter->summer": (10.0, -5.0)}
    rows = [{**r, "estimated_ce90_px": str(estimate_px)} for r in _rows(cases, offsets)]
    _, (closure,) = season_consistency(rows, cases)
    # a 1 px closure against sqrt(3) x 0.5 = 0.87 px, or sqrt(3) x 0.6 = 1.04 px
    assert closure.median_px == pytest.approx(1.0, abs=1e-6) and closure.within_estimate == within


def test_no_triangle_no_section():
    cases = [_case("winter->summer", 0)]
    rows = _rows(cases, {"winter->summer": (0.0, 0.0)})
    assert season_consistency(rows, cases)[1] == []
    assert consistency_lines(rows, cases, ["m/auto/2 winter->summer"]) == []


def test_a_file_offset_over_draws_is_the_content_offset_and_its_spread_the_noise():
    draws = []
    for seed, noise in enumerate((0.0, 2.0, -2.0)):  # metres east: the method's noise on this draw
        case = _case("winter->summer", seed)  # each draw moves the target by another warp
        (row,) = _rows([case], {"winter->summer": (7.0 + noise, -4.0)})
        refused = {**row, "case": case.name, "accepted": "False", "estimate": affine_text(
            geometry.translation(900.0, 0.0) @ case.truth, 512, 512)}
        draws.append(([{**row, "accepted": "True"}, refused], [case]))
    (found,) = file_offsets(draws)
    assert found.tile == "T1/tile_0_0" and found.group == "winter->summer" and found.cases == 3
    # 7 m east and 4 m south on 10 m pixels; the refused 90 px answers are left out
    assert (found.x_px, found.y_px) == (pytest.approx(0.7, abs=1e-6), pytest.approx(0.4, abs=1e-6))
    assert found.spread_px == pytest.approx(np.sqrt(2 / 3) * 0.2, abs=1e-6)
