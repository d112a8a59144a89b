"""Shared set-up of the channel and cell GUI tests: a small synthetic plate, a tiny
TorchScript classifier scripted here, and a viewer with the napari-pcim docks."""

from __future__ import annotations

import pytest
import torch

from napari_pcim._napari.widgets.session import get_session

WAIT_MS = 60_000
DOCKS = ("Plate", "Model", "Explain", "Cells")


class TinyNet(torch.nn.Module):
    """Two convolutions and a linear head: (B, C, 32, 32) -> (B, 2) logits."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(channels, 4, 3, padding=1)
        self.head = torch.nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.conv(x)).mean(dim=(2, 3)))


def save_tiny_model(path, channels: list[str]) -> str:
    from napari_pcim.classifier import save_classifier

    torch.manual_seed(0)
    meta = {
        "channels": channels,
        "input_size": [32, 32],
        "normalization": {"mean": [500.0] * len(channels), "std": [300.0] * len(channels)},
        "classes": ["control", "treated"],
        "field_mode": "resize",
        "arch": "tiny",
        "description": "test model",
    }
    return str(save_classifier(TinyNet(len(channels)).eval(), meta, path))


def dock_all(viewer) -> dict:
    return {name: viewer.window.add_plugin_dock_widget("napari-pcim", name)[1] for name in DOCKS}


def open_well(viewer, docks, qtbot, plate_path, model_path, well="B03") -> None:
    session = get_session(viewer)
    if session.plate is None:
        assert docks["Plate"].open_plate(plate_path) is not None
        docks["Model"].load_model(model_path)
        qtbot.waitUntil(lambda: session.classifier is not None, timeout=WAIT_MS)
    docks["Plate"].select_well(well)
    qtbot.waitUntil(lambda: session.well == well and session.current_view() is not None,
                    timeout=WAIT_MS)


def run(explain, qtbot, method, **options):
    explain.set_method(method)
    explain.form().set_values(**options)
    worker = explain.run()
    assert worker is not None, explain.status.text()
    qtbot.waitUntil(lambda: explain.worker is None, timeout=WAIT_MS)
    return worker


@pytest.fixture(scope="module")
def plate_path(tmp_path_factory):
    """A 96-well synthetic plate of 64² fields, one field per well."""
    from napari_pcim.synth import make_plate

    return make_plate(tmp_path_factory.mktemp("plate") / "p.zarr", plate_format=96, fields=1, size=64)


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    """:class:`TinyNet` on the DAPI and GFP channels, saved as a napari-pcim classifier."""
    return save_tiny_model(tmp_path_factory.mktemp("model") / "tiny.pt", ["DAPI", "GFP"])

