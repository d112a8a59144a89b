"""GUI faults (issue 15) in a real viewer: each becomes a napari error notification.

A model that returns NaN on real data, a plate with a missing chunk, a corrupt model
file, an export into a read-only folder and a bug each show a notification (and the
status line) instead of only a traceback in the console; nothing is added on failure.
The "Whole plate" panel's "skip fields that fail" records a broken field and goes on.
"""

from __future__ import annotations

import logging
import shutil

import pytest

pytest.importorskip("pytestqt")
torch = pytest.importorskip("torch")

from napari.utils.notifications import NotificationSeverity, notification_manager
from qtpy.QtCore import Qt

from napari_pcim._napari.widgets.session import get_session
from napari_pcim.layers import KIND

pytestmark = pytest.mark.gui
WAIT_MS = 30_000
BROKEN = "B03"  # the well whose GFP chunk is deleted


class NaNOnRealData(torch.nn.Module):
    """Fine on the loader's all-zero dry run; NaN logits on any real (non-zero) input."""

    def __init__(self) -> None:
        super().__init__()
        self.head = torch.nn.Linear(2, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.head(x.mean(dim=(2, 3)))
        if bool(x.abs().amax() > 1e-3):
            return logits * float("nan")
        return logits


class Tiny(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.head = torch.nn.Linear(2, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x.mean(dim=(2, 3)))


def _save(module, path) -> str:
    from napari_pcim.classifier import save_classifier

    torch.manual_seed(0)
    meta = {"channels": ["DAPI", "GFP"], "input_size": [32, 32],
            "normalization": {"mean": [500.0, 500.0], "std": [300.0, 300.0]},
            "classes": ["control", "treated"], "field_mode": "resize", "arch": "tiny"}
    return str(save_classifier(module.eval(), meta, path))


@pytest.fixture(scope="module")
def plate(tmp_path_factory):
    """A 96-well plate, 64 px fields, with the GFP chunk of BROKEN's field deleted."""
    from napari_pcim.plate_io import open_plate
    from napari_pcim.synth import make_plate

    path = make_plate(tmp_path_factory.mktemp("plate") / "p.zarr", fields=1, size=64)
    gfp = open_plate(path).channel_names.index("GFP")
    (path / BROKEN[0] / str(int(BROKEN[1:])) / "0" / "0" / f"{gfp}.0.0").unlink()
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    return {"nan": _save(NaNOnRealData(), root / "nan.pt"), "ok": _save(Tiny(), root / "ok.pt")}


@pytest.fixture
def ui(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    widgets = {name: viewer.window.add_plugin_dock_widget("napari-pcim", name)[1]
               for name in ("Plate", "Model", "Explain", "Export")}
    yield viewer, widgets
    explain = widgets["Explain"]
    if explain.worker is not None:
        explain.cancel()
        qtbot.waitUntil(lambda: explain.worker is None, timeout=WAIT_MS)


@pytest.fixture
def errors():
    """The error notifications shown from now on (their messages)."""
    start = len(notification_manager.records)
    return lambda: [n.message for n in notification_manager.records[start:]
                    if n.severity == NotificationSeverity.ERROR]


def _load_model(ui, qtbot, path):
    viewer, w = ui
    w["Model"].load_model(path)
    qtbot.waitUntil(lambda: get_session(viewer).classifier is not None, timeout=WAIT_MS)


def _click(ui, qtbot, well):
    viewer, w = ui
    wm = w["Plate"].well_map
    qtbot.mouseClick(wm, Qt.MouseButton.LeftButton, pos=wm.well_center(well))


def test_explain_nan_model_is_an_error_notification_and_adds_no_layer(
    ui, qtbot, plate, models, errors
):
    """Was 'done' plus an all-NaN layer; now an error naming the non-finite values, no layer."""
    viewer, w = ui
    w["Plate"].open_plate(plate)
    _load_model(ui, qtbot, models["nan"])
    _click(ui, qtbot, "A01")
    qtbot.waitUntil(lambda: get_session(viewer).well == "A01", timeout=WAIT_MS)
    explain = w["Explain"]
    explain.set_method("pcim")
    explain.form().set_values(steps=5, batch_size=8)
    assert explain.run() is not None
    qtbot.waitUntil(lambda: explain.worker is None, timeout=WAIT_MS)
    assert "done" not in explain.status.text()
    assert not [lay for lay in viewer.layers if lay.metadata.get(KIND) == "attribution"]
    (msg,) = errors()
    assert "NaN" in msg and "bug" not in msg and msg in explain.status.text()


def test_missing_chunk_when_loading_a_well_is_an_error_notification(ui, qtbot, plate, errors):
    """Was an all-zero GFP plane; now a notification naming the missing chunk, no layers."""
    viewer, w = ui
    w["Plate"].open_plate(plate)
    _click(ui, qtbot, BROKEN)
    qtbot.waitUntil(lambda: bool(errors()), timeout=WAIT_MS)
    (msg,) = errors()
    assert f"loading well {BROKEN}" in msg and "chunk" in msg and "is missing" in msg
    assert not [lay for lay in viewer.layers if lay.metadata.get("well") == BROKEN]


def test_corrupt_model_file_is_an_error_notification(ui, qtbot, models, tmp_path, errors):
    """A corrupt model file shows 'corrupt model file <path>' and loads nothing."""
    from test_model_integrity import _corrupt_stored_entry

    from napari_pcim.classifier import bundled_model_path

    viewer, w = ui
    path = tmp_path / "broken.pt"
    shutil.copy(bundled_model_path("foci_vgg"), path)
    _corrupt_stored_entry(path)
    worker = w["Model"].load_model(path)
    qtbot.waitUntil(lambda: not worker.is_running, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: bool(errors()), timeout=WAIT_MS)
    (msg,) = errors()
    assert f"corrupt model file {path}" in msg
    assert get_session(viewer).classifier is None


def test_export_to_read_only_folder_is_an_error_notification(ui, qtbot, plate, tmp_path, errors):
    """Exporting into a read-only folder names the file in a notification; nothing written."""
    from faults import read_only_folder

    viewer, w = ui
    w["Plate"].open_plate(plate)
    _click(ui, qtbot, "A01")
    qtbot.waitUntil(lambda: get_session(viewer).well == "A01", timeout=WAIT_MS)
    out = read_only_folder(tmp_path) / "A01_f0.ome.tif"
    assert w["Export"].export(out) == []
    (msg,) = errors()
    assert str(out) in msg and not out.exists()


def test_a_bug_asks_for_a_report_and_logs_its_traceback(ui, errors, caplog):
    """A non-user exception: the notification says it is a bug; the traceback is logged."""
    _, w = ui
    try:
        {}["missing"]
    except KeyError as exc:
        bug = exc
    with caplog.at_level(logging.ERROR, logger="napari_pcim"):
        w["Explain"].failed("PCIM · A01 f0", bug)
    (msg,) = errors()
    assert "bug in napari-pcim" in msg and "report" in msg and "KeyError" in msg
    assert any(r.exc_info and r.exc_info[1] is bug for r in caplog.records)


@pytest.mark.parametrize("skip", [True, False], ids=["skip-failed", "stop-at-failure"])
def test_whole_plate_skip_fields_that_fail(ui, qtbot, plate, models, tmp_path, errors, skip):
    """Checked: the broken field is recorded and named in the status, the others are done.
    Unchecked: the run stops with an error notification naming the field."""
    viewer, w = ui
    w["Plate"].open_plate(plate)
    _load_model(ui, qtbot, models["ok"])
    explain, panel = w["Explain"], w["Explain"].plate_panel
    explain.set_method("rise")
    explain.form().set_values(n_masks=8, batch_size=8)
    panel.store_edit.setText(str(tmp_path / "run.zarr"))
    panel.skip_box.setChecked(skip)
    assert panel.explain_plate(["A01", BROKEN, "C05"]) is not None
    qtbot.waitUntil(lambda: explain.worker is None, timeout=WAIT_MS)
    status = explain.status.text()
    if skip:
        assert "2 fields now" in status and "1 field(s) failed" in status
        assert f"first: {BROKEN} f0" in status and "is missing" in status
        assert not errors()
    else:
        (msg,) = errors()
        assert BROKEN in msg and "is missing" in msg and msg in status
