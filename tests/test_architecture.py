"""The layering is a checked contract: import-linter contracts, their coverage, file sizes.

The contracts live in pyproject.toml (``[tool.importlinter]``): the core imports no
Qt/napari/magicgui, the core imports neither ``napari_pcim.cli`` nor
``napari_pcim._napari``, and no sibling modules import each other in a cycle.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "napari_pcim"
#: The outer layers: everything else is core.
OUTER = {"napari_pcim.cli", "napari_pcim._napari"}
MAX_LINES = 450


def _contracts() -> dict[str, dict]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    return {c["id"]: c for c in config["contracts"]}


def _top_level_modules() -> set[str]:
    names = set()
    for entry in PACKAGE.iterdir():
        if entry.name.startswith("__") or entry.name == "data":
            continue
        if entry.suffix == ".py" or (entry.is_dir() and (entry / "__init__.py").exists()):
            names.add(f"napari_pcim.{entry.stem}")
    return names


@pytest.mark.parametrize("contract_id", ["core-is-qt-free", "core-below-cli-and-gui"])
def test_contracts_cover_every_core_module(contract_id):
    core = _top_level_modules() - OUTER
    listed = set(_contracts()[contract_id]["source_modules"])
    assert core - listed == set(), f"add these core modules to contract {contract_id}"
    assert listed - core == set(), f"contract {contract_id} names modules that do not exist"


def test_import_linter_contracts_are_kept():
    """``lint-imports`` (the command a developer runs) finds every contract kept."""
    exe = Path(sys.executable).with_name("lint-imports")
    out = subprocess.run([str(exe), "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]


def test_no_source_file_over_the_size_limit():
    long = {
        str(p.relative_to(ROOT)): n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert long == {}, f"split these files by job (limit {MAX_LINES} lines): {long}"


def test_import_is_light():
    """``import napari_pcim`` loads neither torch, Qt nor napari (the plugin loads at startup)."""
    code = (
        "import sys, napari_pcim, napari_pcim.vocabulary, napari_pcim.atomic\n"
        "heavy = [m for m in ('torch', 'qtpy', 'PyQt5', 'PyQt6', 'PySide2', 'PySide6', 'napari',"
        " 'magicgui') if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"import napari_pcim imported: {out.stdout.strip()}"
