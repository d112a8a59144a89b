"""Option ranges come from the options dataclasses: degenerate values are refused by name."""

from __future__ import annotations

import numpy as np
import pytest

from known_answer import S, X0, Y0, SquareMarker

from napari_pcim.baseline_images import BASELINES, Baseline
from napari_pcim.classifier import load_classifier, save_classifier
from napari_pcim.explainers import PCIMOptions, RISEOptions, explain
from napari_pcim.explainers.options import option_specs, validate_options
from napari_pcim.explainers.pcim import MIXINGS, READOUTS
from napari_pcim.explainers.rise import SEGMENTATIONS


@pytest.mark.parametrize("cls,method,name,value", [
    (PCIMOptions, "PCIM", "blur_sigma", -3.0),
    (PCIMOptions, "PCIM", "blur_sigma", 0.0),
    (PCIMOptions, "PCIM", "temperature", float("inf")),
    (PCIMOptions, "PCIM", "temperature", 0.0),
    (PCIMOptions, "PCIM", "lr", float("nan")),
    (PCIMOptions, "PCIM", "steps", 2.5),
    (PCIMOptions, "PCIM", "budget", 1.5),
    (PCIMOptions, "PCIM", "readout", "peak"),
    (RISEOptions, "RISE", "grid", 1000),
    (RISEOptions, "RISE", "p", 1.0),
    (RISEOptions, "RISE", "blur_sigma", -3.0),
    (RISEOptions, "RISE", "segmentation", "voronoi"),
])
def test_validator_refuses_degenerate_values_by_name(cls, method, name, value):
    with pytest.raises(ValueError, match=rf"{method} option {name}=.* is invalid: expected"):
        validate_options(cls(**{name: value}), method)


def test_choices_are_the_literal_aliases():
    specs = {s.name: s for s in option_specs(PCIMOptions)}
    assert specs["baseline"].choices == BASELINES == ("median", "zero", "mean", "blur")
    assert specs["mixing"].choices == MIXINGS and specs["readout"].choices == READOUTS
    assert {s.name: s for s in option_specs(RISEOptions)}["segmentation"].choices == SEGMENTATIONS
    assert Baseline.__args__ == BASELINES
    p = {s.name: s for s in option_specs(RISEOptions)}["p"]
    assert p.describe_range() == "a finite number > 0 and < 1"


def test_explain_refuses_a_grid_finer_than_the_tile(tmp_path):
    meta = {"channels": ["DAPI", "Actin", "GFP", "Brightfield"], "input_size": [64, 64],
            "normalization": {"mean": [100.0] * 4, "std": [50.0] * 4},
            "classes": ["control", "treated"]}
    clf = load_classifier(save_classifier(SquareMarker(Y0, X0, S), meta, tmp_path / "s.pt"))
    field = np.full((4, 64, 64), 100, np.uint16)
    with pytest.raises(ValueError, match="RISE option grid=100 is larger than the tile side 64"):
        explain(clf, field, method="rise", grid=100)
    with pytest.raises(ValueError, match="RISE option grid=1000 is invalid"):
        explain(clf, field, method="rise", grid=1000)
