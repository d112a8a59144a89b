"""Foundations: packaging, manifest, import hygiene, console script, and a first real viewer."""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = ROOT / "napari.yaml"


def _manifest() -> dict:
    return yaml.safe_load(MANIFEST.read_text())


def test_lazy_public_api_resolves():
    import napari_pcim

    assert callable(napari_pcim.explain)
    import napari_pcim.explainers  # noqa: F401 - importing the subpackage must not shadow the function

    assert callable(napari_pcim.explain) and napari_pcim.explain.__name__ == "explain"
    assert callable(napari_pcim.load_classifier)
    assert callable(napari_pcim.open_plate)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        napari_pcim.nope  # noqa: B018


def test_packaged_manifest_is_the_root_manifest():
    """The package's napari.yaml is the repository-root file, not a second copy."""
    packaged = ROOT / "src" / "napari_pcim" / "napari.yaml"
    assert packaged.resolve().samefile(MANIFEST)
    from importlib.metadata import entry_points

    (ep,) = [e for e in entry_points(group="napari.manifest") if e.name == "napari-pcim"]
    module, _, fname = ep.value.partition(":")
    found = Path(importlib.import_module(module).__file__).parent / fname
    assert found.read_text() == MANIFEST.read_text()


def test_every_manifest_python_name_imports():
    for command in _manifest()["contributions"]["commands"]:
        module, _, attr = command["python_name"].partition(":")
        obj = getattr(importlib.import_module(module), attr)
        assert callable(obj), command["python_name"]


def test_npe2_validate():
    npe2 = shutil.which("npe2", path=os.path.dirname(sys.executable)) or shutil.which("npe2")
    assert npe2, "npe2 is part of the testing extra"
    out = subprocess.run([npe2, "validate", "napari-pcim"], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_console_script_help_lists_subcommands():
    exe = shutil.which("napari-pcim", path=os.path.dirname(sys.executable))
    assert exe, "the napari-pcim console script is installed with the package"
    out = subprocess.run([exe, "--help"], capture_output=True, text=True, check=True)
    for sub in ("demo", "make-plate", "train", "explain", "bench"):
        assert sub in out.stdout
    bad = subprocess.run([exe, "no-such-command"], capture_output=True, text=True)
    assert bad.returncode != 0 and "invalid choice" in bad.stderr


def test_plugin_dock_widget_opens_in_a_real_viewer(make_napari_viewer, qtbot):
    viewer = make_napari_viewer(show=True)
    dock, widget = viewer.window.add_plugin_dock_widget("napari-pcim", "Plate")
    qtbot.waitUntil(lambda: widget.isVisible(), timeout=5000)
    assert dock.isVisible()
    assert type(widget).__name__ == "PlateWidget"
