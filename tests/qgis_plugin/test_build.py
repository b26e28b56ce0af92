import subprocess
import sys
import zipfile

from conftest import REPO


def test_build_makes_a_zip_with_the_plugin_and_the_core_wheel(tmp_path):
    out = tmp_path / "georef_plugin.zip"
    subprocess.run([sys.executable, str(REPO / "qgis_plugin" / "build.py"), str(out)], check=True)
    names = zipfile.ZipFile(out).namelist()
    assert "georef_plugin/metadata.txt" in names and "georef_plugin/__init__.py" in names
    assert all(name.startswith("georef_plugin/") and "__pycache__" not in name for name in names)
    metadata = zipfile.ZipFile(out).read("georef_plugin/metadata.txt").decode()
    assert "qgisMinimumVersion=3.22" in metadata and "hasProcessingProvider=yes" in metadata
    (wheel,) = [name for name in names if name.startswith("georef_plugin/wheels/")]
    assert wheel.endswith(".whl") and wheel.split("/")[-1].startswith("autogeoref-0.1.0-")
    (tmp_path / "core.whl").write_bytes(zipfile.ZipFile(out).read(wheel))
    held = zipfile.ZipFile(tmp_path / "core.whl").namelist()
    assert "georef/cli/main.py" in held and "georef/pipeline.py" in held and not any("tests/" in n for n in held)


def test_missing_core_says_how_to_install_it(tmp_path, monkeypatch):
    from georef_plugin import bridge

    monkeypatch.setenv("GEOREF_PYTHON", str(tmp_path / "nope"))
    monkeypatch.setenv("PATH", str(tmp_path))  # no python3 that imports georef either
    try:
        bridge.find_python(None)
    except bridge.CoreError as exc:
        assert "Install the georef core" in str(exc) and "autogeoref" in str(exc) and "GEOREF_PYTHON" in str(exc)
    else:
        raise AssertionError("find_python found a core that does not exist")
