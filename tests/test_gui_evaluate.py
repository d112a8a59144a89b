"""The Evaluate dock in a real viewer: what it preselects, how it names metrics, scoring all maps.

The cases of the issue: Evaluate preselected a channel layer (``E08 · DAPI``) as the
"attribution", named metrics by their code names, showed about two rows of the table,
and could only score one layer at a time.
"""

from __future__ import annotations

import numpy as np
import pytest

from napari_pcim._napari.sample_data import sample_field_layers
from napari_pcim.layers import attribution_layer_data, field_layer_data
from napari_pcim.metrics import METRICS

pytestmark = pytest.mark.gui


def _add(viewer, layer_data):
    return [getattr(viewer, f"add_{kind}")(data, **kw) for data, kw, kind in layer_data]


def _map(gt, well, field, label, seed, method):
    amap = np.random.default_rng(seed).random(gt.shape).astype(np.float32) + 2.0 * (gt > 0)
    return attribution_layer_data(amap, label=label, target="treated", well=well, field=field,
                                  scale=(0.65, 0.65), metadata={"method": method})


@pytest.fixture
def evaluate_ui(make_napari_viewer):
    viewer = make_napari_viewer()
    layers = sample_field_layers("foci")  # B03: four channels, GT, nuclei, cells
    gt = next(d for d, kw, _ in layers if kw["metadata"].get("label") == "gt")
    other = field_layer_data(np.stack([d for d, _, k in layers if k == "image"]), {"gt": gt},
                             ["DAPI", "Actin", "GFP", "Brightfield"], (0.65, 0.65), "E08", 0,
                             phenotype="foci")
    _add(viewer, other + layers)
    _, widget = viewer.window.add_plugin_dock_widget("napari-pcim", "Evaluate")
    return viewer, widget, gt


def test_evaluate_never_preselects_a_channel_as_the_attribution(evaluate_ui):
    _, widget, _ = evaluate_ui
    offered = [widget.map_box.itemText(i) for i in range(widget.map_box.count())]
    assert offered == [] and widget.map_box.currentText() == ""  # channels only: nothing
    assert not widget.eval_btn.isEnabled()


def test_evaluate_preselects_newest_map_and_gt_of_its_well_and_field(evaluate_ui):
    viewer, widget, gt = evaluate_ui
    _add(viewer, [_map(gt, "B03", 0, "PCIM", 0, "pcim")])
    assert widget.map_box.currentText() == "PCIM · treated · B03 f0"
    assert widget.gt_box.currentText() == "B03 · GT foci"
    _add(viewer, [_map(gt, "E08", 0, "RISE", 1, "rise")])  # newest: E08's map and E08's GT
    assert widget.map_box.currentText() == "RISE · treated · E08 f0"
    assert widget.gt_box.currentText() == "E08 · GT foci"
    viewer.layers.move(len(viewer.layers) - 1, 0)  # reordering keeps the choice
    assert widget.map_box.currentText() == "RISE · treated · E08 f0"
    offered = {widget.map_box.itemText(i) for i in range(widget.map_box.count())}
    assert offered == {"PCIM · treated · B03 f0", "RISE · treated · E08 f0"}


def test_evaluate_names_metrics_in_words_and_shows_every_row(evaluate_ui, qtbot):
    viewer, widget, gt = evaluate_ui
    _add(viewer, [_map(gt, "B03", 0, "PCIM", 0, "pcim")])
    viewer.window._qt_window.show()
    results = widget.evaluate()
    table = widget.table
    qtbot.waitUntil(lambda: table.viewport().height() > 0, timeout=5000)
    words = [table.verticalHeaderItem(r).text() for r in range(table.rowCount())]
    assert table.rowCount() == len(results) >= 7
    assert "pointing game" in words and "relevance rank accuracy" in words
    assert "area under the ROC curve" in words and not any("_" in w for w in words)
    for r, code in enumerate(results):
        assert words[r] == METRICS[code].label
        assert table.verticalHeaderItem(r).toolTip().startswith(f"{code}: ")
    # every row is visible: the viewport holds all rows, nothing to scroll
    rows_height = sum(table.rowHeight(r) for r in range(table.rowCount()))
    assert table.viewport().height() >= rows_height
    assert table.verticalScrollBar().maximum() == 0
    assert results["pointing_game"] == 1.0  # the map peaks inside the ground truth


def test_evaluate_scores_all_maps_of_the_field(evaluate_ui):
    viewer, widget, gt = evaluate_ui
    _add(viewer, [_map(gt, "B03", 0, "PCIM", 0, "pcim"), _map(gt, "B03", 0, "RISE", 1, "rise"),
                  _map(gt, "E08", 0, "PCIM", 2, "pcim")])
    widget.map_box.setCurrentText("PCIM · treated · B03 f0")
    assert widget.gt_box.currentText() == "B03 · GT foci"
    widget.all_btn.click()
    assert list(widget.results) == ["PCIM · treated · B03 f0", "RISE · treated · B03 f0"]
    assert widget.table.columnCount() == 2
    headers = [widget.table.horizontalHeaderItem(c).text() for c in range(2)]
    assert headers == ["PCIM · treated", "RISE · treated"]
    lines = widget.csv_text().strip().splitlines()
    assert len(lines) == 3 and lines[0].startswith("attribution,ground_truth,relevance_mass")
    assert lines[1].startswith("PCIM · treated · B03 f0,B03 · GT foci,")
    assert lines[2].startswith("RISE · treated · B03 f0,B03 · GT foci,")
