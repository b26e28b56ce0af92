"""Build the installable plugin zip (Plugins > Manage and Install Plugins > Install from ZIP).

Usage: python qgis_plugin/build.py [OUT.zip]   (default dist/georef_plugin.zip)
"""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

PLUGIN = Path(__file__).resolve().parent / "georef_plugin"


def build(out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".zip.part")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(PLUGIN.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                zf.write(path, Path("georef_plugin") / path.relative_to(PLUGIN))
    tmp.replace(out)
    return out


if __name__ == "__main__":
    print(build(Path(sys.argv[1] if len(sys.argv) > 1 else "dist/georef_plugin.zip")))
