"""Reading and comparing maps in a real viewer: the colourbar of the active map, the
status bar's value in words, and the Compare dock's labelled wells × methods grid."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pytestqt")
pytest.importorskip("torch")

from gui_plate import dock_all, model_path, open_well, plate_path, run  # noqa: F401

from napari_pcim._napari.widgets.session import get_session
from napari_pcim.layers import KIND

pytestmark = pytest.mark.gui


@pytest.fixture
def ui(make_napari_viewer, qtbot, plate_path, model_path):
    viewer = make_napari_viewer()
    docks = dock_all(viewer)
    docks["Compare"] = viewer.window.add_plugin_dock_widget("napari-pcim", "Compare")[1]
    open_well(viewer, docks, qtbot, plate_path, model_path)
    return viewer, docks


def _kind(viewer, kind):
    return [layer for layer in viewer.layers if layer.metadata.get(KIND) == kind]


def _world_box(layer):
    (y0, x0), (y1, x1) = (np.asarray(e)[-2:] for e in layer.extent.world)
    return y0, x0, y1, x1


def test_colorbar_shows_for_the_active_attribution_layer_only(ui, qtbot):
    viewer, docks = ui
    run(docks["Explain"], qtbot, "pcim", steps=10, batch_size=8)
    run(docks["Explain"], qtbot, "rise", n_masks=32, batch_size=16)
    pcim, rise = _kind(viewer, "attribution")
    assert viewer.layers.selection.active is rise  # the newest map is active
    assert rise.colorbar.visible and not pcim.colorbar.visible
    note = docks["Explain"].scale_note.text()
    assert rise.name in note and rise.metadata["contrast"]["meaning"] in note
    viewer.layers.selection.active = pcim
    assert pcim.colorbar.visible and not rise.colorbar.visible
    assert pcim.name in docks["Explain"].scale_note.text()
    viewer.layers.selection.active = _kind(viewer, "channel")[0]
    assert not pcim.colorbar.visible and not rise.colorbar.visible
    assert docks["Explain"].scale_note.text() == ""


def test_status_bar_shows_the_value_on_the_method_scale_in_words(ui, qtbot):
    viewer, docks = ui
    run(docks["Explain"], qtbot, "pcim", steps=10, batch_size=8)
    (layer,) = _kind(viewer, "attribution")
    y, x = np.unravel_index(np.argmax(layer.data), layer.data.shape)
    viewer.mouse_over_canvas = True
    viewer.cursor.position = tuple(layer.data_to_world((y, x)))
    viewer.update_status_from_cursor()  # what napari's status thread does (not started in tests)
    assert isinstance(viewer.status, dict), viewer.status
    contrast = layer.metadata["contrast"]
    ratio = float(layer.data[y, x]) / contrast["scale"]
    assert viewer.status["value"].startswith(f"{ratio:.2f} of the PCIM scale (99.5th percentile")
    assert f"raw {float(layer.data[y, x]):.3g}" in viewer.status["value"]
    assert viewer.status["layer_base"] == layer.name
    assert viewer.status["value"] in viewer.status["coordinates"]


def test_compare_two_wells_by_pcim_and_rise_is_a_labelled_grid_with_shared_contrast(
    ui, qtbot, plate_path, model_path
):
    viewer, docks = ui
    get_session(viewer).toggle_pin("B03")  # keep B03 and its maps while C05 is shown
    for well in ("B03", "C05"):
        open_well(viewer, docks, qtbot, plate_path, model_path, well=well)
        run(docks["Explain"], qtbot, "pcim", steps=10, batch_size=8)
        run(docks["Explain"], qtbot, "rise", n_masks=32, batch_size=16)
    compare = docks["Compare"]
    assert {compare.well_list.item(i).text() for i in range(compare.well_list.count())} == {"B03", "C05"}
    compare.compare_btn.click()

    tiles = _kind(viewer, "compare_tile")
    (labels,) = _kind(viewer, "compare_labels")
    assert len(tiles) == 4 and len(labels.data) == 4
    maps = {(ly.metadata["well"], ly.metadata["label"]): ly for ly in _kind(viewer, "attribution")}
    expected = {f"{w} · {m} · {maps[w, m].metadata['target']}" for w in ("B03", "C05")
                for m in ("PCIM", "RISE")}
    assert {c.split(" (p ")[0] for c in labels.features["caption"]} == expected
    boxes = [_world_box(t) for t in tiles]
    for i, a in enumerate(boxes):  # no two tiles overlap, and none overlaps the wells shown
        others = boxes[i + 1:] + [_world_box(ly) for ly in _kind(viewer, "channel")]
        for b in others:
            assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1], (a, b)
    by_method = {}
    for tile in tiles:
        by_method.setdefault(tile.metadata["method"], []).append(tile)
        np.testing.assert_array_equal(tile.data, maps[tile.metadata["well"], tile.metadata["label"]].data)
    for method, pair in by_method.items():
        assert len(pair) == 2 and pair[0].contrast_limits == pair[1].contrast_limits, method
        assert pair[0].contrast_limits == maps["B03", pair[0].metadata["label"]].contrast_limits
    assert by_method["pcim"][0].contrast_limits != by_method["rise"][0].contrast_limits
    rows = {m: {_world_box(t)[0] for t in ts} for m, ts in by_method.items()}
    assert all(len(r) == 1 for r in rows.values()) and rows["pcim"] != rows["rise"]
    assert "4 tile(s)" in compare.status.text()
    assert len(compare.compare()) == 5 and len(_kind(viewer, "compare_tile")) == 4  # replaced


def test_compare_names_the_pairs_without_a_map(ui, qtbot):
    _, docks = ui
    run(docks["Explain"], qtbot, "pcim", steps=10, batch_size=8)
    added = docks["Compare"].compare(wells=["B03", "C05"], methods=["PCIM"])
    assert len(added) == 2  # one tile and its labels
    assert "no map yet of PCIM of C05" in docks["Compare"].status.text()
    assert docks["Compare"].compare(wells=["C05"], methods=["RISE"]) == []
