"""AROSICS run beside georef on the same cases (its environment: bash tools/install_arosics.sh)."""

import csv

import numpy as np
import pytest
from click.testing import CliRunner

from georef.benchmark.peers import AROSICS_PYTHON, PeerUnavailable, arosics_python, paired
from georef.cli.main import cli

from conftest import S2_SEASONS


def test_paired_compares_only_cases_both_accept():
    def row(case, matcher, error, accepted=True):
        return {"case": case, "group": "g", "matcher": matcher, "model": "m", "threshold": "0",
                "error_px": str(error), "accepted": str(accepted)}

    rows = [row("a", "ours", 0.2), row("a", "peer", 0.4), row("b", "ours", 0.5), row("b", "peer", 0.3),
            row("c", "ours", 0.1), row("c", "peer", 9.0, accepted=False), row("d", "peer", 0.1)]
    result = paired(rows, ("ours", "m", "0"), ("peer", "m", "0"), "g")
    assert result == {"cases": 2, "median_ours_px": pytest.approx(0.35), "median_peer_px": pytest.approx(0.35),
                      "ours_closer": 0.5}


def test_a_missing_environment_is_named(monkeypatch, tmp_path):
    monkeypatch.setenv(AROSICS_PYTHON, str(tmp_path / "nope" / "python"))
    with pytest.raises(PeerUnavailable, match="install_arosics.sh"):
        arosics_python()


@pytest.mark.realdata
def test_arosics_side_by_side_on_two_shift_cases(tmp_path, monkeypatch):
    from conftest import REPO

    monkeypatch.setenv(AROSICS_PYTHON, str(REPO / ".venv-arosics" / "bin" / "python"))
    out = tmp_path / "bench"
    result = CliRunner().invoke(cli, ["-q", "benchmark", str(S2_SEASONS), "--case", "shift", "--limit", "2",
                                      "--peers", "arosics", "--out", str(out)])
    assert result.exit_code == 0, result.output + result.stderr
    rows = list(csv.DictReader(open(out / "cases.csv")))
    peer = [r for r in rows if r["matcher"] == "arosics"]
    assert len(peer) == 2 and len(rows) == 4
    errors = np.array([float(r["error_px"]) for r in peer])
    assert np.isfinite(errors).all() and (errors < 3).all()  # both found the offset of up to 30 px
    report = (out / "report.md").read_text()
    assert "## Side by side" in report and "| arosics/global | winter->summer | 2 |" in report
    assert "arosics/global/0 winter->summer" in report
