"""The plugin installs its own core: from the plugin zip alone plus a package index, in a background task."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from conftest import REPO, wait_for


def test_pip_progress_follows_the_packages_and_downloads():
    from georef_plugin.installer import PipProgress

    tracker = PipProgress()
    lines = ["Collecting torch==2.13.0", "Progress 10 of 100", "Progress 100 of 100", "Collecting filelock",
             "Collecting sympy", "Requirement already satisfied: numpy", "Installing collected packages: sympy"]
    seen = [tracker.feed(line) for line in lines]
    assert seen == sorted(seen) and seen[0] == 0 and 0 < seen[2] < seen[-2] < seen[-1] == 0.8


def test_plugin_without_a_wheel_or_with_a_missing_folder_says_so(tmp_path):
    from georef_plugin import installer

    with pytest.raises(installer.InstallError, match="holds 0 georef core wheels.*qgis_plugin/build.py"):
        installer.bundled_wheel(tmp_path)
    env_dir = tmp_path / "profile" / "georef" / "core"
    offline = installer.InstallOptions(env_dir, wheel_folder=str(tmp_path / "no-wheels"))
    with pytest.raises(installer.InstallError, match="folder of wheels .*no-wheels does not exist"):
        installer.Installer(offline).run()
    assert not env_dir.parent.exists()
    with pytest.raises(installer.InstallError, match="the chosen Python .*python3 does not exist"):
        installer.find_base_python(str(tmp_path / "python3"))
    too_old = tmp_path / "python"
    too_old.write_text("#!/bin/sh\necho 3 8\n")
    too_old.chmod(0o755)
    with pytest.raises(installer.InstallError, match="no Python 3.11 or newer with venv found.*python3-venv"):
        installer.find_base_python(str(too_old))


def test_without_a_core_the_message_bar_offers_the_install(qgis_iface, tmp_path, monkeypatch):
    from qgis.core import QgsSettings
    from qgis.PyQt.QtWidgets import QPushButton

    from georef_plugin import bridge, settings
    from georef_plugin.dialog import InstallDialog
    from georef_plugin import plugin as plugin_module
    from georef_plugin.plugin import GeorefPlugin

    monkeypatch.setenv("GEOREF_PYTHON", str(tmp_path / "nope"))
    monkeypatch.setenv("PATH", str(tmp_path))
    for module in (settings, plugin_module):  # a profile without an installed core
        monkeypatch.setattr(module, "core_env_dir", lambda: tmp_path / "profile" / "georef" / "core")
    before = QgsSettings().value(bridge.SETTINGS_KEY, None)
    QgsSettings().remove(bridge.SETTINGS_KEY)
    plugin = GeorefPlugin(qgis_iface)
    plugin.initGui()
    try:
        plugin.actions[0].trigger()  # "Auto-georeference" without a core
        buttons = [b for b in qgis_iface.messageBar().findChildren(QPushButton)
                   if b.text() == "Install the georef core…"]
        assert buttons and plugin.dialog is None
        buttons[-1].click()
        assert isinstance(plugin.dialog, InstallDialog) and plugin.dialog.isVisible()
        options = plugin.dialog.options()
        assert options.env_dir == tmp_path / "profile" / "georef" / "core" and options.torch_build == "cpu"
        plugin.dialog.close()
    finally:
        plugin.unload()
        if before is not None:
            QgsSettings().setValue(bridge.SETTINGS_KEY, before)


@pytest.fixture
def plugin_from_zip(tmp_path, qgis_iface):
    """The plugin loaded by QGIS from the zip that build.py makes, unpacked as QGIS installs it."""
    import qgis.utils

    out = tmp_path / "georef_plugin.zip"
    subprocess.run([sys.executable, str(REPO / "qgis_plugin" / "build.py"), str(out)], check=True)
    plugins = tmp_path / "profile" / "python" / "plugins"
    zipfile.ZipFile(out).extractall(plugins)
    repo_modules = {name: sys.modules.pop(name) for name in list(sys.modules) if name.startswith("georef_plugin")}
    qgis.utils.plugin_paths.insert(0, str(plugins))
    sys.path.insert(0, str(plugins))
    try:
        qgis.utils.updateAvailablePlugins()
        assert qgis.utils.loadPlugin("georef_plugin") and qgis.utils.startPlugin("georef_plugin")
        plugin = qgis.utils.plugins["georef_plugin"]
        assert Path(sys.modules["georef_plugin"].__file__).is_relative_to(plugins)
        yield plugin
    finally:
        qgis.utils.unloadPlugin("georef_plugin")
        for name in [m for m in sys.modules if m.startswith("georef_plugin")]:
            del sys.modules[name]
        sys.modules.update(repo_modules)
        sys.path.remove(str(plugins))
        qgis.utils.plugin_paths.remove(str(plugins))
        qgis.utils.updateAvailablePlugins()


@pytest.mark.network
def test_install_task_creates_repairs_and_refuses_a_broken_index(plugin_from_zip, qgis_iface, tmp_path,
                                                                 monkeypatch):
    from qgis.core import Qgis, QgsApplication, QgsSettings

    from georef_plugin import bridge
    from georef_plugin.installer import InstallOptions, env_python

    # This machine reaches package registries only: fail at once on PyTorch's own index, don't retry 5 times.
    monkeypatch.setenv("PIP_RETRIES", "0")
    logged = []
    QgsApplication.messageLog().messageReceived.connect(
        lambda message, tag, level: logged.append(message) if tag == "georef" else None)
    settings = QgsSettings()
    before = settings.value(bridge.SETTINGS_KEY, None)
    env_dir = tmp_path / "profile" / "georef" / "core"
    try:
        progress = []
        task = plugin_from_zip.install_core(InstallOptions(env_dir))
        task.progressChanged.connect(progress.append)
        assert wait_for(task, timeout=900), task.reason
        python = env_python(env_dir)
        version = subprocess.run([str(python), "-m", "georef", "--version"], capture_output=True, text=True)
        assert version.stdout.split()[-1] == "0.1.0"
        assert settings.value(bridge.SETTINGS_KEY) == str(python)
        assert task.result.action == "installed"
        assert any(0 < p < 100 for p in progress) and progress == sorted(progress)
        assert "Successfully installed" in (env_dir.parent / "install.log").read_text()
        assert any(line.startswith("[torch]") for line in logged)  # pip's output, line by line, in the log panel
        assert any(line.startswith("Successfully installed") for line in logged)
        assert any("is installed" in m for m in qgis_iface.messageBar().get_messages(Qgis.Success))

        again = plugin_from_zip.install_core(InstallOptions(env_dir))
        assert wait_for(again) and again.result.action == "unchanged"

        # A broken core is repaired in place.
        init, = (env_dir / "lib").glob("python3*/site-packages/georef/__init__.py")
        init.write_text("raise ImportError('broken on purpose')\n")
        repair = plugin_from_zip.install_core(InstallOptions(env_dir))
        assert wait_for(repair, timeout=900), repair.reason
        assert repair.result.action == "repaired" and "broken on purpose" not in init.read_text()

        # An unreachable index: the task fails with the reason, leaves no environment, changes no setting.
        monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)  # only the index given below
        monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
        broken_dir = tmp_path / "profile2" / "georef" / "core"
        failed = plugin_from_zip.install_core(InstallOptions(broken_dir, index_url="file:///nonexistent/simple"))
        assert not wait_for(failed, timeout=300)
        assert "torch step failed" in failed.reason and "install.log" in failed.reason
        assert any("installing the georef core failed: torch step failed" in m
                   for m in qgis_iface.messageBar().get_messages(Qgis.Critical))
        assert not broken_dir.exists() and (broken_dir.parent / "install.log").exists()
        assert failed.configured_runs and settings.value(bridge.SETTINGS_KEY) == str(python)
    finally:
        if before is None:
            settings.remove(bridge.SETTINGS_KEY)
        else:
            settings.setValue(bridge.SETTINGS_KEY, before)
