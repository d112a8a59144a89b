"""GUI tests of the napari-pcim dock widgets in a real napari viewer (run under Xvfb).

A small synthetic plate (96 wells, one 128 px field each; 64 px for whole-plate runs)
and a tiny TorchScript classifier scripted here are the inputs; explainers run with
tiny options (PCIM 10 steps, RISE 16-64 masks) so the file stays fast on 2 cores.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pytestqt")
torch = pytest.importorskip("torch")

from gui_plate import model_path  # noqa: F401 - fixture: the tiny DAPI/GFP classifier
from gui_plate import save_tiny_model as _save_model
from qtpy.QtCore import Qt

from napari_pcim._napari.widgets import (
    EvaluateWidget,
    ExplainWidget,
    ExportWidget,
    ModelWidget,
    PlateWidget,
)
from napari_pcim._napari.widgets.session import get_session
from napari_pcim.layers import KIND, METHOD_COLORMAPS, diverging_colormap

pytestmark = pytest.mark.gui

WIDGETS = {
    "Plate": PlateWidget,
    "Model": ModelWidget,
    "Explain": ExplainWidget,
    "Evaluate": EvaluateWidget,
    "Export": ExportWidget,
}
WAIT_MS = 30_000




@pytest.fixture(scope="module")
def plate_path(tmp_path_factory):
    from napari_pcim.synth import make_plate

    return make_plate(tmp_path_factory.mktemp("plate") / "p.zarr", plate_format=96, fields=1, size=128)


@pytest.fixture(scope="module")
def small_plate(tmp_path_factory):
    from napari_pcim.synth import make_plate

    return make_plate(tmp_path_factory.mktemp("small") / "s.zarr", plate_format=96, fields=1, size=64)


@pytest.fixture
def ui(make_napari_viewer, qtbot):
    """A viewer with the five widgets docked through the plugin manifest."""
    viewer = make_napari_viewer()
    widgets = {}
    for name in WIDGETS:
        _, widgets[name] = viewer.window.add_plugin_dock_widget("napari-pcim", name)
    yield viewer, widgets
    explain = widgets["Explain"]
    if explain.worker is not None:  # never leave a thread running past a test
        explain.cancel()
        qtbot.waitUntil(lambda: explain.worker is None, timeout=WAIT_MS)


def _open(ui, qtbot, plate_path, model_path=None, well="B03"):
    viewer, w = ui
    assert w["Plate"].open_plate(plate_path) is not None
    if model_path is not None:
        w["Model"].load_model(model_path)
        qtbot.waitUntil(lambda: get_session(viewer).classifier is not None, timeout=WAIT_MS)
    wm = w["Plate"].well_map
    qtbot.mouseClick(wm, Qt.MouseButton.LeftButton, pos=wm.well_center(well))
    qtbot.waitUntil(lambda: get_session(viewer).well == well, timeout=WAIT_MS)


def _run(widget, qtbot, method, **options):
    widget.set_method(method)
    widget.form().set_values(**options)
    worker = widget.run()
    assert worker is not None, widget.status.text()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=WAIT_MS)
    return worker


def _attribution_layers(viewer):
    return [layer for layer in viewer.layers if layer.metadata.get(KIND) == "attribution"]


def test_docked_widgets_load_clicked_wells_and_pin(ui, qtbot, plate_path, tmp_path):
    from bioio import BioImage

    from napari_pcim._napari.writer import write_layers
    from napari_pcim.plate_io import open_plate

    viewer, w = ui
    for name, cls in WIDGETS.items():
        assert isinstance(w[name], cls)
        assert w[name].isVisibleTo(viewer.window._qt_window)
    sessions = {id(x.session) for x in w.values() if hasattr(x, "session")}
    assert sessions == {id(get_session(viewer))}
    _open(ui, qtbot, plate_path, well="B03")
    plate = open_plate(plate_path)
    names = [layer.name for layer in viewer.layers]
    assert names[:4] == ["B03 · DAPI", "B03 · Actin", "B03 · GFP", "B03 · Brightfield"]
    assert "B03 · GT foci" in names and "B03 · nuclei" in names
    cmaps = [viewer.layers[n].colormap.name for n in names[:4]]
    assert cmaps == ["blue", "green", "magenta", "gray"]
    dapi = viewer.layers["B03 · DAPI"]
    assert tuple(dapi.scale) == pytest.approx(plate.pixel_size)
    assert dapi.blending == "additive"
    np.testing.assert_array_equal(dapi.data, plate.read_field("B03", 0)[0])
    np.testing.assert_array_equal(
        viewer.layers["B03 · GT foci"].data, plate.read_labels("B03", 0)["gt"]
    )
    # the tooltip names the plate-map condition
    assert plate.conditions["B03"] in w["Plate"].well_map.tooltip_for("B03")

    # another well replaces B03's layers ...
    wm = w["Plate"].well_map
    qtbot.mouseClick(wm, Qt.MouseButton.LeftButton, pos=wm.well_center("B04"))
    qtbot.waitUntil(lambda: get_session(viewer).well == "B04", timeout=WAIT_MS)
    assert not [layer for layer in viewer.layers if layer.name.startswith("B03")]
    # ... unless it is pinned: then both are shown side by side
    qtbot.mouseClick(w["Plate"].pin_btn, Qt.MouseButton.LeftButton)
    assert get_session(viewer).pinned == ["B04"]
    wm.setFocus()
    qtbot.keyClick(wm, Qt.Key.Key_Right)  # arrow keys move to the next well
    qtbot.waitUntil(lambda: get_session(viewer).well == "B05", timeout=WAIT_MS)
    b04, b05 = viewer.layers["B04 · DAPI"], viewer.layers["B05 · DAPI"]
    assert b05.translate[-1] > b04.translate[-1] + 128 * plate.pixel_size[1] * 0.99

    # the npe2 writer (File > Save Selected Layers) writes layers with the same exporter
    layers = [b05, viewer.layers["B05 · GT foci"]]
    out = tmp_path / "sel.ome.zarr"
    written = write_layers(str(out), [layer.as_layer_data_tuple() for layer in layers])
    assert written == [str(out)]
    img = BioImage(out)
    assert img.channel_names == ["DAPI"]
    np.testing.assert_allclose(img.get_image_data("YX", C=0), b05.data)
    with pytest.raises(ValueError, match="must end with"):
        write_layers(str(tmp_path / "x.png"), [b05.as_layer_data_tuple()])


def test_model_widget_and_plate_run(ui, qtbot, plate_path, model_path, tmp_path):
    viewer, w = ui
    _open(ui, qtbot, plate_path, model_path)
    explain = w["Explain"]
    model = w["Model"]
    assert "DAPI, GFP" in model.meta_label.text()
    assert "✓" in model.check_label.text()
    worker = model.predict()
    qtbot.waitUntil(lambda: "B03" in get_session(viewer).predictions, timeout=WAIT_MS)
    assert worker is not None
    probs = get_session(viewer).predictions["B03"]
    assert probs.shape == (2,) and probs.sum() == pytest.approx(1.0, abs=1e-5)
    # a model needing a channel the plate lacks is refused with the channel's name
    bad = _save_model(tmp_path / "bad.pt", ["DAPI", "Tubulin"])
    model.load_model(bad)
    qtbot.waitUntil(lambda: "Tubulin" in model.check_label.text(), timeout=WAIT_MS)
    assert "✗" in model.check_label.text()
    assert not model.predict_btn.isEnabled()
    # PixelCAM is offered only for classifiers with a localisation head
    item = explain.method_box.model().item(explain.method_box.findData("pixelcam"))
    assert not item.isEnabled() and "PixelCAM" in explain.method_note.text()


def test_pcim_rise_evaluate_export(ui, qtbot, plate_path, model_path, tmp_path):
    viewer, w = ui
    _open(ui, qtbot, plate_path, model_path)
    explain = w["Explain"]
    explain.top_box.setChecked(True)
    _run(explain, qtbot, "pcim", steps=10, batch_size=8)
    _run(explain, qtbot, "rise", n_masks=64, batch_size=32)
    maps = _attribution_layers(viewer)
    assert len(maps) == 2, explain.status.text()
    session = get_session(viewer)
    dapi = viewer.layers["B03 · DAPI"]
    for layer, method, label in zip(maps, ("pcim", "rise"), ("PCIM", "RISE")):
        meta = layer.metadata
        assert layer.name == f"{label} · {meta['target']} · B03 f0"
        assert meta["method"] == method and meta["well"] == "B03" and meta["field"] == 0
        assert meta["model_sha256"] == session.classifier.sha256
        assert set(meta["probabilities"]) == {"control", "treated"}
        assert meta["timings"]["total"] > 0
        assert layer.data.shape == dapi.data.shape
        assert tuple(layer.scale) == tuple(dapi.scale)
        assert layer.colormap.name in (METHOD_COLORMAPS[method], diverging_colormap(method)["name"])
    assert maps[0].metadata["options"]["steps"] == 10
    assert maps[1].metadata["options"]["n_masks"] == 64
    top = viewer.layers[f"PCIM top 5% · {maps[0].metadata['target']} · B03 f0"]
    assert 0 < top.data.mean() <= 0.06

    # Evaluate: metrics of the map against the ground truth, as a table and CSV
    evaluate = w["Evaluate"]
    results = evaluate.evaluate(maps[0].name, "B03 · GT foci")
    assert "relevance_mass" in results and evaluate.table.rowCount() == len(results)
    header, row = evaluate.csv_text().strip().splitlines()
    assert header.startswith("attribution,ground_truth,relevance_mass")
    assert row.startswith(maps[0].name)

    # Export: channels, both maps and the labels to one OME-TIFF, metrics CSV beside it
    from bioio import BioImage

    export = w["Export"]
    asked = []
    export.confirm_overwrite = lambda p: asked.append(p) or False
    out = tmp_path / "B03.ome.tif"
    written = export.export(out)
    assert written and written[0] == str(out) and not asked
    from napari_pcim._napari.writer import metrics_path

    assert metrics_path(out).read_text().startswith("attribution,ground_truth")

    img = BioImage(out)
    data = np.asarray(img.get_image_data("CYX"))
    names = list(img.channel_names)
    assert names[:4] == ["DAPI", "Actin", "GFP", "Brightfield"]
    np.testing.assert_allclose(data[2], viewer.layers["B03 · GFP"].data)
    for amap in maps:
        np.testing.assert_allclose(data[names.index(amap.name.rsplit(" · ", 1)[0])], amap.data)

    # an existing file is kept when the user says no ...
    before = out.stat().st_mtime_ns
    assert export.export(out) == [] and asked == [[out, metrics_path(out)]]
    assert out.stat().st_mtime_ns == before
    # ... and replaced when the user says yes
    export.confirm_overwrite = lambda p: True
    assert export.export(out)[0] == str(out)


def test_cancel_then_switch_wells_mid_run(ui, qtbot, plate_path, model_path):
    viewer, w = ui
    _open(ui, qtbot, plate_path, model_path)
    explain = w["Explain"]
    explain.set_method("rise")
    # tolerance=0 draws every mask: a converged map would end the run before the cancel
    explain.form().set_values(n_masks=200_000, tolerance=0, batch_size=4)
    explain.run()
    assert explain.worker is not None
    qtbot.wait(300)
    assert explain.worker is not None, "the 200 000-mask run ended before it could be cancelled"
    explain.cancel()
    qtbot.waitUntil(lambda: explain.worker is None, timeout=WAIT_MS)
    assert _attribution_layers(viewer) == []
    assert "cancelled" in explain.status.text()

    # switching wells while PCIM runs: the result still belongs to the well it started on
    explain.set_method("pcim")
    explain.form().set_values(steps=40, patience=40, batch_size=8)
    explain.run()
    w["Plate"].select_well("C07")  # switch while PCIM runs
    # Whichever finishes first (the run or the well switch), the result survives the switch.
    qtbot.waitUntil(lambda: explain.worker is None and get_session(viewer).well == "C07",
                    timeout=WAIT_MS)
    (layer,) = _attribution_layers(viewer)
    assert layer.name.endswith("· B03 f0") and layer.metadata["well"] == "B03"


def test_explain_plate_writes_resumable_store_then_browse_it(
    ui, qtbot, small_plate, model_path, tmp_path, monkeypatch
):
    import json

    import zarr

    from napari_pcim.batch import read_records

    viewer, w = ui
    _open(ui, qtbot, small_plate, model_path)
    explain, plate_widget = w["Explain"], w["Plate"]
    panel = explain.plate_panel
    session = get_session(viewer)
    explain.set_method("rise")
    explain.form().set_values(n_masks=16, batch_size=16)
    # the plate job carries exactly the options a single-field Run would pass
    options = explain.current_options()
    assert options["n_masks"] == 16 and panel.plate_job(["B03"]).options == options

    # the default store sits in the cache dir, one per plate and job, stable across calls
    monkeypatch.setenv("NAPARI_PCIM_CACHE", str(tmp_path / "cache"))
    default = panel.store_path(panel.plate_job(["B03"]))
    assert default.parent == tmp_path / "cache" / "results" and "s-rise-" in default.name
    assert panel.store_path(panel.plate_job(["A01"])) == default
    explain.seed_box.setValue(5)
    assert panel.store_path(panel.plate_job(["B03"])) != default
    explain.seed_box.setValue(0)

    store = tmp_path / "run.zarr"
    panel.store_edit.setText(str(store))
    wells = ["A01", "A11", "B03"]
    assert panel.explain_plate(wells) is not None, explain.status.text()
    qtbot.waitUntil(lambda: explain.worker is None, timeout=WAIT_MS)
    records = {r["well"]: r for r in read_records(store)}
    assert set(records) == set(wells), explain.status.text()
    assert json.loads((store / ".zattrs").read_text())["napari_pcim"]["method"] == "rise"
    for well, rec in records.items():
        np.testing.assert_allclose(
            session.predictions[well], [rec["p_control"], rec["p_treated"]], rtol=1e-6
        )
    # treated controls (columns 11-12) carry ground truth, so they get a score
    assert session.scores["A11"] == pytest.approx(records["A11"]["relevance_mass"])
    assert "A01" not in session.scores  # a control well has no ground truth
    before = plate_widget.well_map.color_of("A11").name()
    plate_widget.color_by.setCurrentText("prediction")
    assert plate_widget.well_map.color_of("A11").name() != before
    assert f"predicted: {records['A11']['predicted']}" in plate_widget.well_map.tooltip_for("A11")

    # a rerun with one more well resumes: done fields are skipped, not rewritten
    done_file = store / "A" / "1" / "0" / ".zattrs"
    stamp = done_file.stat().st_mtime_ns
    assert panel.explain_plate([*wells, "C07"]) is not None
    qtbot.waitUntil(lambda: explain.worker is None, timeout=WAIT_MS)
    assert "1 fields now, 3 from an earlier run" in explain.status.text()
    assert done_file.stat().st_mtime_ns == stamp
    assert {r["well"] for r in read_records(store)} == {*wells, "C07"}

    # browsing: open the store with no plate open; it opens its plate, a click adds the maps
    session.set_plate(None)
    assert plate_widget.open_results(tmp_path) is None
    assert "not a napari-pcim result store" in plate_widget.status.text()
    assert plate_widget.open_results(store) is not None
    assert session.plate is not None and session.results is not None
    assert "C07" in session.predictions
    wm = plate_widget.well_map
    qtbot.mouseClick(wm, Qt.MouseButton.LeftButton, pos=wm.well_center("A11"))
    qtbot.waitUntil(lambda: session.well == "A11", timeout=WAIT_MS)
    (layer,) = _attribution_layers(viewer)
    target = records["A11"]["targets"][0]
    assert layer.name == f"RISE · {target} · A11 f0"
    stored = zarr.open_group(str(store / "A" / "11" / "0"), mode="r")["0"]
    np.testing.assert_array_equal(layer.data, stored[0])
    assert layer.colormap.name in (METHOD_COLORMAPS["rise"], diverging_colormap("rise")["name"])
    assert tuple(layer.scale) == tuple(viewer.layers["A11 · DAPI"].scale)
    assert layer.metadata["well"] == "A11" and layer.metadata["field"] == 0
    assert layer.metadata["record"]["predicted"] == records["A11"]["predicted"]
    # clicking the same well again does not duplicate it; another well replaces it
    qtbot.mouseClick(wm, Qt.MouseButton.LeftButton, pos=wm.well_center("A11"))
    assert len(_attribution_layers(viewer)) == 1
    qtbot.mouseClick(wm, Qt.MouseButton.LeftButton, pos=wm.well_center("B03"))
    qtbot.waitUntil(lambda: session.well == "B03", timeout=WAIT_MS)
    assert [lay.name for lay in _attribution_layers(viewer)] == [
        f"RISE · {records['B03']['targets'][0]} · B03 f0"
    ]
