"""Plate overview without ground truth: field statistics, outlier flags, the plate table
and the well map coloured by them (issue 13, "Plate overview without ground truth")."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
import zarr

from napari_pcim.batch import BatchJob, ResultStore, run_plate
from napari_pcim.classifier import bundled_model_path, save_classifier
from napari_pcim.plate_stats import field_statistics, flag_outliers, span
from napari_pcim.synth import make_plate
from napari_pcim.vocabulary import DEMO_CHANNELS, DEMO_CLASSES

CLASSES = ["control", "treated"]


# --------------------------------------------------------------------------- known answers


def test_compartment_and_border_shares_of_a_hand_made_map():
    amap = np.zeros((100, 100))
    amap[40:50, 40:50] = 1.0      # nucleus: 100 px of mass 1
    amap[50:60, 40:50] = 2.0      # cytoplasm of the same cell: 100 px of mass 2
    amap[0:2, :] = 1.0            # border band (5 px): 200 px of mass 1
    amap[70:80, 70:80] = -5.0     # negative attribution counts nowhere
    nuclei = np.zeros((100, 100), np.int32)
    nuclei[40:50, 40:50] = 1
    cells = np.zeros_like(nuclei)
    cells[40:60, 40:50] = 1
    s = field_statistics(amap, {"nuclei": nuclei, "cells": cells, "gt": nuclei},
                         [0.25, 0.75], CLASSES)
    assert s["nucleus_share"] == pytest.approx(100 / 500)
    assert s["cytoplasm_share"] == pytest.approx(200 / 500)
    assert s["background_share"] == pytest.approx(200 / 500)
    assert s["border_share"] == pytest.approx(200 / 500)
    # half the mass (250): the 100 cytoplasm pixels (200) plus 50 pixels of value 1
    assert s["concentration"] == pytest.approx(150 / 10_000)
    assert (s["predicted"], s["confidence"]) == ("treated", 0.75)
    assert "dominant_channel" not in s


def test_one_label_image_splits_objects_from_background_and_channels_name_the_dominant():
    amap = np.ones((40, 40))
    worms = np.zeros((40, 40), np.int32)
    worms[:10] = 3  # a quarter of the field
    s = field_statistics(amap, {"worms": worms}, [0.9, 0.1], CLASSES, [0.2, 0.7, 0.1], ["A", "B", "C"])
    assert s["object_share"] == pytest.approx(0.25)
    assert s["background_share"] == pytest.approx(0.75)
    assert s["concentration"] == pytest.approx(0.5)  # a flat map: half the area holds half
    assert 0.18 < s["border_share"] < 0.2  # a flat map: the band's area share
    assert (s["dominant_channel"], s["dominant_share"]) == ("B", 0.7)
    assert (s["predicted"], s["confidence"]) == ("control", 0.9)


def test_a_map_without_positive_attribution_has_no_shares_and_no_focus():
    s = field_statistics(-np.ones((8, 8)), {}, [0.5, 0.5], CLASSES)
    assert s["border_share"] == 0.0 and s["concentration"] == 1.0
    assert "background_share" not in s


@pytest.mark.parametrize("where", ["map", "probabilities", "importance"])
def test_non_finite_input_is_refused_with_one_line(where):
    amap, probs, imp = np.ones((8, 8)), np.array([0.5, 0.5]), np.array([0.5, 0.5])
    {"map": amap, "probabilities": probs, "importance": imp}[where][0] = np.nan
    with pytest.raises(ValueError, match="non-finite") as exc:
        field_statistics(amap, {}, probs, CLASSES, imp, ["A", "B"])
    assert "\n" not in str(exc.value)


def test_flag_outliers_within_the_predicted_class_and_by_the_absolute_border_rule():
    recs = [{"well": f"B{i:02d}", "field": 0, "predicted": "treated",
             "border_share": 0.18 + 0.01 * (i % 3), "background_share": 0.2 + 0.01 * (i % 2)}
            for i in range(1, 9)]
    recs.append({"well": "C01", "field": 1, "predicted": "treated",
                 "border_share": 0.2, "background_share": 0.9})    # relative rule
    recs.append({"well": "D01", "field": 0, "predicted": "control",
                 "border_share": 0.7, "background_share": 0.3})    # absolute rule, class of one
    recs.append({"well": "E01", "field": 0, "predicted": "control",
                 "border_share": 0.2, "background_share": 0.95})   # class too small for z
    flagged = flag_outliers(recs)
    assert [(w, f) for w, f, _ in flagged] == [("C01", 1), ("D01", 0)]
    assert "background" in flagged[0][2] and "treated" in flagged[0][2]
    assert "border" in flagged[1][2]


def test_span_rescales_a_plates_narrow_range_for_the_well_map():
    """Concentrations of 0.02-0.06 all looked blue on a fixed 0-1 colour scale."""
    scaled, low, high = span({"B01": 0.02, "B02": 0.04, "B11": 0.06})
    assert (low, high) == (0.02, 0.06)
    assert scaled == pytest.approx({"B01": 0.0, "B02": 0.5, "B11": 1.0})
    assert span({"B01": 0.3, "B02": 0.3})[0] == {"B01": 0.5, "B02": 0.5}
    assert span({}) == ({}, 0.0, 0.0)


# --------------------------------------------------------------------------- planted shortcut


class BorderShortcut(torch.nn.Module):
    """'treated' logit = a bias + mean GFP + the mean of very bright DAPI (normalised > 10)
    in the 3-px border band: a shortcut that only an artefact switches on."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = torch.relu(x[:, 0] - 10.0)
        band = (d[:, :3, :].mean(dim=(1, 2)) + d[:, -3:, :].mean(dim=(1, 2))
                + d[:, :, :3].mean(dim=(1, 2)) + d[:, :, -3:].mean(dim=(1, 2)))
        s = 10.0 + x[:, 2].mean(dim=(1, 2)) + band
        return torch.stack([torch.zeros_like(s), s], dim=1)


META = {"channels": list(DEMO_CHANNELS), "input_size": [64, 64],
        "normalization": {"mean": [100.0] * 4, "std": [500.0] * 4},
        "classes": list(DEMO_CLASSES), "field_mode": "resize", "arch": "test-border-shortcut"}


def _plant_border_artefact(plate, well: str) -> None:
    row, col = well[0], str(int(well[1:]))
    arr = zarr.open_array(str(plate / row / col / "0" / "0"), mode="r+")
    img = arr[:]
    img[0, :3, :] = img[0, -3:, :] = img[0, :, :3] = img[0, :, -3:] = 20_000
    arr[:] = img


def test_planted_border_artefact_well_is_flagged(tmp_path, make_napari_viewer):
    plate = make_plate(tmp_path / "plate.zarr", plate_format=96, fields=1, size=64, seed=2)
    _plant_border_artefact(plate, "C01")
    model = save_classifier(torch.jit.script(BorderShortcut()), META, tmp_path / "shortcut.pt")
    wells = [f"{r}{c:02d}" for r in "BCDE" for c in (1, 2)]
    job = BatchJob(plate=str(plate), model=str(model), method="input_x_gradient", wells=wells)
    report = run_plate(job, tmp_path / "res.zarr")
    results = ResultStore.open(report.store)
    assert {r["predicted"] for r in results.records} == {"treated"}
    c01 = results.record("C01", 0)
    assert c01["border_share"] > 0.5 > max(r["border_share"] for r in results.records if r["well"] != "C01")
    assert list(results.outliers()) == ["C01"]
    with open(report.csv, newline="") as fh:
        rows = {r["well"]: r for r in csv.DictReader(fh)}
    assert rows["C01"]["outlier"] == "True" and "border" in rows["C01"]["outlier_reason"]
    assert all(rows[w]["outlier"] == "False" and not rows[w]["outlier_reason"] for w in wells if w != "C01")
    assert {"border_share", "concentration", "nucleus_share", "confidence"} <= set(rows["B01"])

    from napari_pcim._napari.widgets.plate import PlateWidget

    widget = PlateWidget(make_napari_viewer())
    widget.open_results(report.store)
    widget.color_by.setCurrentText("border share")
    assert widget.well_map.flagged == {"C01"}
    assert "! outlier" in widget.well_map.tooltip_for("C01") and "border" in widget.well_map.tooltip_for("C01")
    assert "outlier" not in widget.well_map.tooltip_for("B01")
    assert widget.well_map.color_of("C01") != widget.well_map.color_of("B01")


# --------------------------------------------------------------------------- foci plate AUC


def _auc(positive, negative) -> float:
    """ROC AUC that ``positive`` values rank above ``negative`` ones (ties count half)."""
    return float(np.mean([(p > n) + 0.5 * (p == n) for p in positive for n in negative]))


def test_gt_free_statistic_separates_hit_from_dmso_wells(tmp_path, make_napari_viewer):
    plate = make_plate(tmp_path / "plate.zarr", plate_format=96, fields=1, size=128)
    dmso = [f"{r}{c:02d}" for r in "BCD" for c in (1, 2)]
    hits = [f"{r}{c:02d}" for r in "BCD" for c in (11, 12)]
    job = BatchJob(plate=str(plate), model=str(bundled_model_path("foci_vgg")), method="pcim",
                   options={"steps": 5}, wells=dmso + hits)
    results = ResultStore.open(run_plate(job, tmp_path / "res.zarr").store)
    focus = {w: -v for w, v in results.well_statistic("concentration").items()}  # focused = high
    assert _auc([focus[w] for w in hits], [focus[w] for w in dmso]) >= 0.9
    assert results.outliers() == {}

    from napari_pcim._napari.widgets.plate import PlateWidget

    widget = PlateWidget(make_napari_viewer())
    widget.open_results(tmp_path / "res.zarr")
    widget.color_by.setCurrentText("concentration")
    assert "half the attribution" in widget.legend.text() and "this plate's range" in widget.legend.text()
    most, least = min(focus, key=focus.get), max(focus, key=focus.get)  # the plate's two ends
    assert widget.well_map.color_of(most) != widget.well_map.color_of(least)
    assert all(widget.well_map.color_of(w).name() != "#6b6b6b" for w in dmso + hits)
