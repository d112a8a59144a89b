"""A TorchScript file without napari-pcim metadata: the CLI/core error explains the sidecar,
and the Model dock's form (generated from SidecarFields) writes it and loads the model.

Real TorchScript files (scripted here), a real napari viewer (pytest-qt, under Xvfb).
"""

from __future__ import annotations

import dataclasses
import json
import typing

import pytest
import torch
from gui_plate import TinyNet

from napari_pcim.classifier import ClassifierError, load_classifier
from napari_pcim.classifier_meta import (
    FIELD_MODES,
    SIDECAR_EXAMPLE,
    MissingMetadataError,
    SidecarFields,
    write_sidecar,
)

WAIT_MS = 60_000


@pytest.fixture
def plain_model(tmp_path):
    """A TorchScript archive saved without napari-pcim metadata."""
    path = tmp_path / "colleague.pt"
    torch.manual_seed(0)
    torch.jit.save(torch.jit.script(TinyNet(2).eval()), str(path))
    return path


def test_missing_metadata_error_explains_the_sidecar(plain_model):
    with pytest.raises(MissingMetadataError) as info:
        load_classifier(plain_model)
    msg = str(info.value)
    assert "\n" not in msg
    assert str(plain_model.with_name("colleague.pt.json")) in msg
    for key in ("channels", "input_size", "normalization", "classes", "field_mode", "tile_overlap"):
        assert key in msg
    assert json.dumps(SIDECAR_EXAMPLE) in msg  # a complete, copyable example
    assert info.value.sidecar == plain_model.with_name("colleague.pt.json")


def test_the_example_in_the_error_is_a_valid_sidecar(plain_model):
    example = dict(SIDECAR_EXAMPLE)
    write_sidecar(plain_model.with_name("colleague.pt.json"), example)
    clf = load_classifier(plain_model)
    assert clf.meta.channels == example["channels"] and clf.meta.field_mode == "tile"
    with pytest.raises(ClassifierError, match="already exists; not overwritten"):
        write_sidecar(plain_model.with_name("colleague.pt.json"), example)


def test_sidecar_fields_validate_and_name_the_field():
    good = SidecarFields(channels="DAPI, GFP", mean="1, 2", std="3, 4", input_height=64, input_width=64)
    assert good.to_metadata() == {
        "channels": ["DAPI", "GFP"], "input_size": [64, 64],
        "normalization": {"mean": [1.0, 2.0], "std": [3.0, 4.0]},
        "classes": ["control", "treated"], "field_mode": "tile", "tile_overlap": 0,
    }
    with pytest.raises(ClassifierError, match="normalization.std"):
        dataclasses.replace(good, std="3").to_metadata()
    with pytest.raises(ClassifierError, match="mean must be comma-separated numbers"):
        dataclasses.replace(good, mean="1, x").to_metadata()
    assert typing.get_args(typing.get_type_hints(SidecarFields)["field_mode"]) == FIELD_MODES


@pytest.mark.gui
def test_model_dock_form_writes_the_sidecar_and_loads(make_napari_viewer, qtbot, plain_model):
    pytest.importorskip("pytestqt")
    from napari_pcim._napari.widgets import ModelWidget
    from napari_pcim._napari.widgets.session import get_session

    viewer = make_napari_viewer()
    widget = ModelWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Model")
    widget.load_model(plain_model)
    qtbot.waitUntil(lambda: widget.form is not None, timeout=WAIT_MS)
    form = widget.form
    # the form is generated from the dataclass: same fields, same defaults, Literal choices
    assert [w.name for w in form.editors] == [f.name for f in dataclasses.fields(SidecarFields)]
    assert form.values() == SidecarFields()
    assert tuple(form.editors["field_mode"].choices) == FIELD_MODES
    sidecar = plain_model.with_name("colleague.pt.json")

    # a wrong channel count fails the dry run: the error shows, nothing is written
    form.set_values(channels="DAPI, GFP, Actin", mean="1, 2, 3", std="1, 1, 1", input_height=32,
                    input_width=32)
    form.submit()
    qtbot.waitUntil(lambda: "forward pass" in form.status.text(), timeout=WAIT_MS)
    assert not sidecar.exists() and get_session(viewer).classifier is None

    form.set_values(channels="DAPI, GFP", mean="100, 200", std="10, 20", classes="negative, positive",
                    field_mode="resize")
    form.submit()
    qtbot.waitUntil(lambda: get_session(viewer).classifier is not None, timeout=WAIT_MS)
    clf = get_session(viewer).classifier
    assert clf.meta.channels == ["DAPI", "GFP"] and clf.meta.classes == ["negative", "positive"]
    written = json.loads(sidecar.read_text())
    assert written["normalization"] == {"mean": [100.0, 200.0], "std": [10.0, 20.0]}
    assert written["input_size"] == [32, 32] and written["field_mode"] == "resize"
    assert widget.form is None and "DAPI, GFP" in widget.meta_label.text()
    # the sidecar is now found by any later load, in the GUI or the CLI
    assert load_classifier(plain_model).meta.to_dict() == clf.meta.to_dict()
