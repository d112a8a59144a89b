"""A classifier that raises only on real data (its dry run on zeros passes at load):
one clear line naming the model file, not a traceback (issue 15)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_pcim.classifier import ClassifierError, load_classifier, save_classifier
from napari_pcim.vocabulary import DEMO_CHANNELS, DEMO_CLASSES

META = {"channels": list(DEMO_CHANNELS), "input_size": [32, 32],
        "normalization": {"mean": [0.0] * 4, "std": [1.0] * 4},
        "classes": list(DEMO_CLASSES), "field_mode": "tile", "tile_overlap": 8}


class RaisesOnRealData(torch.nn.Module):
    """Fine on the loader's zeros; raises inside the model on any non-zero input."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if bool(x.abs().sum() > 0):
            raise RuntimeError("shape mismatch inside the model's head")
        z = x.mean(dim=(1, 2, 3))
        return torch.stack([-z, z], dim=1)


@pytest.fixture()
def model_path(tmp_path):
    return save_classifier(RaisesOnRealData(), META, tmp_path / "raises.pt")


@pytest.mark.parametrize("method", ["pcim", "rise"])
def test_model_raising_on_real_data_is_a_classifier_error_naming_the_file(model_path, method):
    clf = load_classifier(model_path)  # the dry run on zeros passes
    field = np.full((4, 48, 48), 1000, np.uint16)
    with pytest.raises(ClassifierError, match=r"raises\.pt raised an error .*shape mismatch inside"):
        from napari_pcim.explainers import explain

        explain(clf, field, method=method)


def test_model_raising_on_real_data_is_one_line_in_the_cli(model_path, tmp_path, capsys):
    from napari_pcim.cli.main import main
    from napari_pcim.synth import make_plate

    plate = make_plate(tmp_path / "p.zarr", plate_format=96, fields=1, size=64, seed=1)
    code = main(["explain", str(plate), "--model", str(model_path), "--wells", "B03",
                 "--out", str(tmp_path / "out.ome.tif")])
    err = capsys.readouterr().err
    assert code == 2
    lines = [line for line in err.splitlines() if "error" in line]
    assert len(lines) == 1 and "raises.pt" in lines[0] and "Traceback" not in err
