import csv
import json

import pytest
from click.testing import CliRunner

from georef.benchmark.seeds import pool, write_markdown
from georef.cli.main import cli

from conftest import S2_SEASONS

KEY = "m/auto/2 winter->summer"


def _row(tile: str, n: int, error_px: float, accepted: bool = True, estimate_px: float = 1.0) -> dict:
    return {"case": f"{tile}/tile_0_{n}:winter->summer", "matcher": "m", "model": "auto", "threshold": "2",
            "group": "winter->summer", "error_px": str(error_px), "accepted": str(accepted), "total_s": "0.1",
            "estimated_ce90_px": str(estimate_px)}


def test_pooled_shares_count_every_seeds_cases_and_keep_each_seeds_own():
    scored = {
        # seed 3: both tiles within 1 px
        3: [_row("A", 0, 0.2), _row("A", 1, 0.4), _row("B", 0, 0.5), _row("B", 1, 0.6)],
        # seed 7: one of tile B refused, one of tile B wrong and accepted, tile A beyond its estimate
        7: [_row("A", 0, 0.3), _row("A", 1, 0.9, estimate_px=0.5), _row("B", 0, 0.8, accepted=False),
            _row("B", 1, 4.0)],
    }
    entry = pool(scored)["settings"][KEY]
    assert entry["cases"] == 8
    assert entry["per_seed"] == {"3": 1.0, "7": 0.5}
    assert entry["accepted_within_1px"] == 6 / 8
    assert entry["per_tile"] == {"A": 1.0, "B": 0.5}
    assert entry["refused"] == 1 and entry["wrong_but_accepted"] == 1
    assert entry["within_estimate"] == 5 / 7  # of the accepted: 0.9 > 0.5 and 4.0 > 1.0 are not covered


def test_one_tile_has_no_per_tile_shares_and_the_markdown_has_each_seed(tmp_path):
    pooled = pool({0: [_row("A", 0, 0.2)], 1: [_row("A", 0, 2.0)]})
    assert "per_tile" not in pooled["settings"][KEY]
    text = write_markdown(pooled, tmp_path / "seeds.md", "georef benchmark x --seed 0-1").read_text()
    assert f"| {KEY} | 2 | 100% / 0% |" in text


def test_the_markdown_gives_each_file_offset_that_several_seeds_repeat(tmp_path):
    pooled = pool({0: [_row("A", 0, 0.2)], 1: [_row("A", 0, 0.3)]})
    pooled["files"] = {"m/auto/2": [
        {"tile": "A/tile_0_0", "group": "winter->summer", "cases": 2, "x_px": 0.704, "y_px": -0.004, "spread_px": 0.02},
        {"tile": "A/tile_0_1", "group": "winter->summer", "cases": 1, "x_px": 0.1, "y_px": 0.1, "spread_px": 0.0}]}
    text = write_markdown(pooled, tmp_path / "seeds.md", "georef benchmark x --seed 0-1").read_text()
    assert "| m/auto/2 | A/tile_0_0 | winter->summer | 2 | +0.70 | +0.00 | 0.70 | 0.02 |" in text
    assert "A/tile_0_1" not in text  # one accepted answer repeats nothing


@pytest.mark.parametrize("value", ["2-1", "1,1", "-1", "a", "0-2,2"])
def test_bad_seeds_are_a_usage_error(tmp_path, value):
    result = CliRunner().invoke(cli, ["benchmark", str(tmp_path), "--seed", value, "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "--seed" in result.output
    assert not (tmp_path / "o").exists()


@pytest.mark.realdata
def test_seeds_run_as_separate_runs_would(tmp_path):
    def run(out, seed):
        result = CliRunner().invoke(cli, ["benchmark", str(S2_SEASONS), "--limit", "1", "--seed", seed,
                                          "--out", str(out)])
        assert result.exit_code == 0, result.output

    run(tmp_path / "pooled", "0,3")
    run(tmp_path / "alone", "3")
    pooled = json.loads((tmp_path / "pooled" / "seeds.json").read_text())
    assert pooled["seeds"] == [0, 3] and pooled["settings"]["xfeat/auto/2 winter->summer"]["cases"] == 2

    def errors(folder):
        rows = list(csv.DictReader(open(folder / "cases.csv")))
        return [r["case"] for r in rows], [float(r["error_px"]) for r in rows]

    # the same case and answer (two runs differ in the last bits of threaded arithmetic)
    names, alone = errors(tmp_path / "alone")
    assert errors(tmp_path / "pooled" / "seed-3")[0] == names
    assert errors(tmp_path / "pooled" / "seed-3")[1] == pytest.approx(alone, abs=1e-4)
    assert errors(tmp_path / "pooled" / "seed-0")[1] != pytest.approx(alone, abs=1e-3)  # another draw
    assert (tmp_path / "pooled" / "seed-0" / "report.md").is_file()
    assert "seeds 0 / 3" in (tmp_path / "pooled" / "seeds.md").read_text()
    for name in ("cdf.png", "calibration.png"):
        assert (tmp_path / "pooled" / name).stat().st_size > 1000, name
