"""Per-cell attribution (:func:`napari_pcim.cell_table`) and compartment shares."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from napari_pcim import cell_table
from napari_pcim.cells import compartment_shares


def _two_cells() -> tuple[np.ndarray, np.ndarray]:
    labels = np.zeros((4, 6), dtype=np.int32)
    labels[:, :2] = 1
    labels[:, 3:5] = 7
    amap = np.zeros((4, 6), dtype=np.float32)
    amap[:, :2] = 1.0  # cell 1: 8 pixels of +1
    amap[0, 3] = 3.0  # cell 7: one pixel of +3 and one of −1
    amap[1, 3] = -1.0
    amap[:, 5] = 0.5  # background: 4 pixels of +0.5
    return amap, labels


def test_cell_table_statistics_by_hand():
    amap, labels = _two_cells()
    table = cell_table(amap, labels)
    assert list(table.columns) == ["label", "area", "sum", "mean", "max", "share"]
    rows = {int(r.label): r for r in table.itertuples()}
    assert set(rows) == {1, 7}  # background is not a row
    positive_total = 8 + 3 + 2  # cell 1, cell 7's positive pixel, background
    assert rows[1].area == 8 and rows[1].sum == pytest.approx(8) and rows[1].max == 1.0
    assert rows[7].sum == pytest.approx(2) and rows[7].mean == pytest.approx(0.25)
    assert rows[1].share == pytest.approx(8 / positive_total)
    assert rows[7].share == pytest.approx(3 / positive_total)
    assert table.label.tolist() == [1, 7]  # sorted by share, largest first


def test_cell_table_channel_shares_are_fractions_of_all_channels():
    amap, labels = _two_cells()
    dapi = np.where(labels == 1, 1.0, 0.0)
    gfp = np.where(labels == 7, 3.0, 0.0)
    table = cell_table(amap, labels, channel_maps={"DAPI": dapi, "GFP": gfp})
    rows = {int(r.label): r._asdict() for r in table.itertuples()}
    # positive attribution over both channels: DAPI 8 × 1 + GFP 8 × 3 = 32
    assert rows[1]["share_DAPI"] == pytest.approx(8 / 32) and rows[1]["share_GFP"] == 0
    assert rows[7]["share_GFP"] == pytest.approx(24 / 32) and rows[7]["share_DAPI"] == 0


def test_cell_table_csv_round_trip(tmp_path):
    amap, labels = _two_cells()
    table = cell_table(amap, labels, channel_maps={"GFP": amap})
    path = tmp_path / "cells.csv"
    table.to_csv(path, index=False)
    back = pd.read_csv(path)
    pd.testing.assert_frame_equal(back, table, check_dtype=False)


@pytest.mark.parametrize(
    "amap, labels, message",
    [
        (np.zeros((4, 4)), np.zeros((4, 5), dtype=int), "shape"),
        (np.full((4, 4), np.nan), np.ones((4, 4), dtype=int), "non-finite"),
        (np.zeros((4, 4)), np.ones((4, 4), dtype=float), "integer label image"),
        (np.zeros((2, 4, 4)), np.ones((4, 4), dtype=int), "2-D"),
    ],
)
def test_cell_table_refuses_bad_input(amap, labels, message):
    with pytest.raises(ValueError, match=message):
        cell_table(amap, labels)


def test_cell_table_without_objects_is_empty_with_columns():
    table = cell_table(np.ones((3, 3)), np.zeros((3, 3), dtype=np.uint16))
    assert len(table) == 0 and "share" in table.columns


def test_compartment_shares_split_positive_attribution():
    amap = np.array([[4.0, 2.0, 1.0, -5.0]])
    nuclei = np.array([[1, 0, 0, 0]])
    cells = np.array([[1, 1, 0, 0]])
    shares = compartment_shares(amap, nuclei, cells)
    assert shares == pytest.approx({"nucleus": 4 / 7, "cytoplasm": 2 / 7, "background": 1 / 7})


def test_cells_with_foci_rank_first_on_demo_fields():
    """PCIM on foci_vgg: the top-10 cells by share are cells that hold foci (ground truth)."""
    from napari_pcim import explain, load_classifier, synth
    from napari_pcim.classifier import bundled_model_path

    clf = load_classifier(bundled_model_path("foci_vgg"))
    precisions, chance = [], []
    for seed in (100, 101):
        f = synth.generate_field("foci", True, size=256, seed=seed)
        cells = f.labels["cells"]
        with_foci = set(np.unique(cells[f.labels["gt"] > 0]).tolist()) - {0}
        table = cell_table(explain(clf, f.image, method="pcim", target="treated").map(0), cells)
        top = table.label.head(10).tolist()
        precisions.append(np.mean([label in with_foci for label in top]))
        chance.append(len(with_foci) / len(table))
    assert min(precisions) >= 0.8, (precisions, chance)
    assert min(precisions) > max(chance)  # better than picking cells at random
