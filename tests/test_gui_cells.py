"""The Cells dock, in a real viewer: the per-cell table of an attribution map over a
Labels layer, its features, row clicks, colouring, compartments and CSV."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pytestqt")
pytest.importorskip("torch")

from gui_plate import dock_all, model_path, open_well, plate_path, run  # noqa: F401 - fixtures
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QMessageBox

from napari_pcim._napari.widgets.session import get_session
from napari_pcim.cells import cell_table, compartment_shares
from napari_pcim.layers import KIND

pytestmark = pytest.mark.gui


@pytest.fixture
def explained(make_napari_viewer, qtbot, plate_path, model_path):
    """A viewer showing B03 with a per-channel PCIM map; returns (viewer, docks, map layer)."""
    viewer = make_napari_viewer()
    docks = dock_all(viewer)
    open_well(viewer, docks, qtbot, plate_path, model_path)
    docks["Explain"].channel_panel.per_channel_box.setChecked(True)
    run(docks["Explain"], qtbot, "pcim", steps=10, batch_size=8)
    (amap,) = [ly for ly in viewer.layers if ly.metadata.get(KIND) == "attribution"]
    return viewer, docks, amap


def test_cell_table_rows_equal_cell_table_and_labels_features(explained):
    viewer, docks, amap = explained
    cells = docks["Cells"]
    assert cells.map_box.currentText() == amap.name
    assert cells.labels_box.currentText() == "B03 · cells"  # the map's field's cells first
    table = cells.compute()
    labels = viewer.layers["B03 · cells"]
    _, attribution = docks["Explain"].channel_panel.result
    expected = cell_table(amap.data, labels.data, channel_maps=dict(
        zip(attribution.channel_names, attribution.channel_maps[0, 0])))
    assert list(expected.columns) == ["label", "area", "sum", "mean", "max", "share",
                                      "share_DAPI", "share_GFP"]
    assert table.equals(expected)
    assert labels.features.drop(columns="index").equals(expected)
    np.testing.assert_array_equal(labels.features["index"], expected["label"])
    shown = [[cells.view.item(r, c).value for c in range(cells.view.columnCount())]
             for r in range(cells.view.rowCount())]
    np.testing.assert_allclose(shown, expected.to_numpy(dtype=float))
    assert cells.view.isSortingEnabled()
    # compartments: nuclei and cells exist for this field
    view = get_session(viewer).views["B03"]
    shares = compartment_shares(amap.data, view.labels["nuclei"], view.labels["cells"])
    assert cells.compartments.text() == "positive attribution: " + ", ".join(
        f"{k} {v:.0%}" for k, v in shares.items())


def test_clicking_a_row_centres_the_camera_on_the_cell(explained, qtbot):
    from scipy import ndimage

    viewer, docks, amap = explained
    cells = docks["Cells"]
    cells.compute(amap.name, "B03 · nuclei")
    cells.view.sortItems(1, Qt.SortOrder.AscendingOrder)  # by area: another order than share
    row = 2
    label = cells.row_label(row)
    nuclei = viewer.layers["B03 · nuclei"]
    rect = cells.view.visualItemRect(cells.view.item(row, 0))
    qtbot.mouseClick(cells.view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    centroid = nuclei.data_to_world(ndimage.center_of_mass(nuclei.data == label))
    camera = getattr(viewer, "scene", viewer).camera
    np.testing.assert_allclose(camera.center[-2:], centroid, rtol=1e-6)


def test_colour_cells_fills_each_cell_with_its_share(explained):
    viewer, docks, amap = explained
    cells = docks["Cells"]
    table = cells.compute(amap.name, "B03 · nuclei")
    (layer,) = cells.colour_cells()
    assert layer.name == f"cell share · {amap.name}" and layer.metadata[KIND] == "cell_share"
    nuclei = viewer.layers["B03 · nuclei"].data
    for label, share in zip(table["label"][:5], table["share"][:5]):
        np.testing.assert_allclose(layer.data[nuclei == label], share, rtol=1e-6)
    assert (layer.data[nuclei == 0] == 0).all()


def test_cell_csv_round_trips_and_a_second_save_asks(explained, tmp_path, monkeypatch):
    import pandas as pd

    _, docks, amap = explained
    cells = docks["Cells"]
    assert not cells.save_btn.isEnabled()
    table = cells.compute(amap.name, "B03 · nuclei")
    out = tmp_path / "B03_f0_cells.csv"
    assert cells.save_csv(out) == out
    back = pd.read_csv(out)
    assert list(back.columns[:4]) == ["well", "field", "labels", "attribution"]
    assert (back["well"] == "B03").all() and (back["field"] == 0).all()
    pd.testing.assert_frame_equal(back[table.columns], table, check_dtype=False)
    before = out.read_bytes()
    asked = []

    def say_no(*args, **kwargs):
        asked.append(args[2])
        return QMessageBox.StandardButton.No

    monkeypatch.setattr(QMessageBox, "question", say_no)
    cells.compute(amap.name, "B03 · cells")
    assert cells.save_csv(out) is None
    assert len(asked) == 1 and str(out) in asked[0]
    assert out.read_bytes() == before and "Not saved" in cells.status.text()
    assert cells.save_csv(out, overwrite=True) == out and out.read_bytes() != before


def test_cell_table_refuses_labels_of_another_shape(explained):
    viewer, docks, amap = explained
    viewer.add_labels(np.ones((10, 10), np.int32), name="drawn")
    cells = docks["Cells"]
    assert cells.compute(amap.name, "drawn") is None
    assert cells.status.text() == (
        f"labels layer 'drawn' has shape (10, 10); expected {amap.data.shape} like {amap.name!r}"
    )


def test_cell_table_of_user_drawn_labels(explained):
    viewer, docks, amap = explained
    drawn = np.zeros(amap.data.shape, np.int32)
    drawn[:16, :16], drawn[40:, 40:] = 1, 7
    viewer.add_labels(drawn, name="drawn")
    table = docks["Cells"].compute(amap.name, "drawn")
    assert list(table["label"]) == sorted([1, 7], key=lambda k: -table.set_index("label").loc[k, "share"])
    assert viewer.layers["drawn"].features["index"].tolist() == table["label"].tolist()
