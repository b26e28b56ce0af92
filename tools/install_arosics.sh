#!/usr/bin/env bash
# AROSICS in an environment of its own (.venv-arosics), for `georef benchmark --peers arosics`.
# AROSICS needs GDAL's Python bindings built against the system's GDAL and numpy < 2, which do not
# belong beside georef's stack: Debian's python3-gdal, and a venv that sees it.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! /usr/bin/python3 -c "from osgeo import gdal; import ensurepip, venv" 2>/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-gdal python3-venv >/dev/null
fi
GDAL_VERSION=$(/usr/bin/python3 -c "from osgeo import gdal; print(gdal.__version__)")
if [ ! -x .venv-arosics/bin/python ] || ! .venv-arosics/bin/python -c "import arosics" 2>/dev/null; then
    rm -rf .venv-arosics
    /usr/bin/python3 -m venv --system-site-packages .venv-arosics
    # Pinned: the version the comparison was made with; gdal pinned to the system's bindings, so that pip
    # picks AROSICS's dependencies that fit them instead of building GDAL from source.
    .venv-arosics/bin/pip install -q "arosics==1.12.1" "numpy<2" "gdal==${GDAL_VERSION}"
fi
.venv-arosics/bin/python -c "import arosics; print('AROSICS', arosics.__version__, 'in .venv-arosics')"
