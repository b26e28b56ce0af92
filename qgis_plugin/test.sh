#!/usr/bin/env bash
# The plugin's tests in real QGIS (Debian's qgis 3.22, headless), against the core in ./.venv.
# Installs what it needs: qgis, python3-qgis, xvfb (apt) and pytest-qgis in a venv over QGIS's Python.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! /usr/bin/python3 -c "import qgis.core" 2>/dev/null || ! command -v xvfb-run >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        qgis python3-qgis python3-venv xvfb xauth >/dev/null
fi
if [ ! -x .venv-qgis/bin/pytest ]; then
    /usr/bin/python3 -m venv --system-site-packages .venv-qgis
    .venv-qgis/bin/pip install -q pytest pytest-qgis
fi
export QT_QPA_PLATFORM=offscreen GEOREF_PYTHON="$PWD/.venv/bin/python"
# Leave every venv (the core's, or one a caller left on PATH): QGIS's embedded Python would take its python3
# from PATH and lose the qgis module.
PATH=$(printf %s "$PATH" | tr ':' '\n' | while read -r dir; do [ -f "$dir/../pyvenv.cfg" ] || echo "$dir"; done | paste -sd: -)
export PATH
unset VIRTUAL_ENV PYTHONHOME
.venv-qgis/bin/python -m pytest -p no:cacheprovider -o qgis_gui_enabled=false tests/qgis_plugin "$@"
