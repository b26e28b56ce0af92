"""The public API as a user calls it from Python, and the README's example of it, run as written."""

import importlib
import json
import re
import runpy

import pytest

import georef

from conftest import REPO


def test_public_names_resolve_and_are_documented():
    for name in georef.__all__:
        assert getattr(georef, name) is not None, name
    assert {"align_file", "estimate_alignment", "AlignOptions", "OutputOptions", "Alignment", "GeorefError"} <= set(
        georef.__all__)
    assert issubclass(georef.GeorefError, Exception)
    with pytest.raises(AttributeError):
        georef.not_a_name  # noqa: B018


def test_invalid_options_name_the_parameter_not_a_flag():
    with pytest.raises(georef.GeorefError) as info:
        georef.estimate_alignment("t.tif", "r.tif", georef.AlignOptions(max_shift_m=float("nan")))
    assert str(info.value).startswith("max_shift_m must be a finite number") and "--" not in str(info.value)
    assert isinstance(info.value, ValueError)


def readme_example() -> str:
    text = (REPO / "README.md").read_text()
    section = text[text.index("## Python API"):]
    return re.search(r"```python\n(.*?)```", section, re.S)[1]


def test_the_readme_example_runs_as_written(tmp_path, monkeypatch):
    make_demo = runpy.run_path(str(REPO / "samples" / "make_demo.py"))
    make_demo["main"](str(tmp_path / "samples" / "demo"))
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(readme_example(), "README.md", "exec"), namespace)
    alignment = namespace["alignment"]
    assert isinstance(alignment, importlib.import_module("georef.result").Alignment)
    assert alignment.quality.passed
    outputs = sorted(p.name for p in (tmp_path / "samples" / "demo").iterdir())
    assert "aligned_api.tif" in outputs and "report_api.json" in outputs
    report = json.loads((tmp_path / "samples" / "demo" / "report_api.json").read_text())
    assert report["status"] == "passed" and report["output"].endswith("aligned_api.tif")
