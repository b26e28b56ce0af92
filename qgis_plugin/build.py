"""Build the installable plugin zip (Plugins > Manage and Install Plugins > Install from ZIP).

The zip holds the plugin and the georef core's wheel (``georef_plugin/wheels/``), which the
plugin installs into an environment of its own on first use.

Usage: python qgis_plugin/build.py [OUT.zip]   (default dist/georef_plugin.zip)
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

PLUGIN = Path(__file__).resolve().parent / "georef_plugin"
REPO = PLUGIN.parents[1]


def core_wheel(folder: Path) -> Path:
    """Build the core's wheel from this checkout into ``folder``.

    Built from a copy of what the wheel holds: an in-tree build would reuse a stale ``build/``.
    """
    source = folder / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    for name in ("georef", "training"):
        shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(folder),
                    str(source)], check=True)
    (wheel,) = folder.glob("autogeoref-*.whl")
    return wheel


def build(out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".zip.part")
    with tempfile.TemporaryDirectory() as folder, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(PLUGIN.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.parent.name != "wheels":
                zf.write(path, Path("georef_plugin") / path.relative_to(PLUGIN))
        wheel = core_wheel(Path(folder))
        zf.write(wheel, Path("georef_plugin") / "wheels" / wheel.name)
    tmp.replace(out)
    return out


if __name__ == "__main__":
    print(build(Path(sys.argv[1] if len(sys.argv) > 1 else "dist/georef_plugin.zip")))
