"""Known answer: the tool explains the *model*, not the biology.

A TorchScript classifier decides "treated" from an imaging artefact — a bright patch in
the top-left corner of the DAPI channel — and ignores the foci entirely; it is extremely
confident (logit margin > 500). Every registered method that can explain it must put its
attribution on the artefact, not on the foci: that is how a biologist catches such a model.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from napari_pcim import metrics, synth
from napari_pcim.classifier import load_classifier, save_classifier
from napari_pcim.explainers import COMPARISON_METHODS, METHODS, explain, unavailable_reason

P = 16  # the artefact: a P × P bright square in the top-left corner of channel 0
#: Options that keep the test fast on a 2-core CPU; every other option is the default.
FAST = {"rise": {"n_masks": 1000}}


class CornerNet(torch.nn.Module):
    """Logit margin = gain · (mean channel 0 in the top-left P × P corner − 1)."""

    def __init__(self, gain: float = 200.0) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(4, 1, 3, padding=1, bias=False)
        with torch.no_grad():
            self.conv.weight.zero_()
            self.conv.weight[0, 0, 1, 1] = 1.0
        self.gain = gain
        self.p = P

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v = self.conv(x)[:, 0, : self.p, : self.p].mean(dim=(1, 2))
        t = self.gain * (v - 1.0)
        return torch.stack([-t / 2, t / 2], dim=1)


@pytest.fixture(scope="module")
def corner_model(tmp_path_factory):
    meta = {
        "channels": list(synth.CHANNELS), "input_size": [64, 64],
        "normalization": {"mean": [150.0, 400.0, 300.0, 2500.0], "std": [300.0, 200.0, 300.0, 300.0]},
        "classes": ["control", "treated"], "field_mode": "tile", "tile_overlap": 16,
        "arch": "cornernet",
    }
    path = save_classifier(CornerNet().eval(), meta, tmp_path_factory.mktemp("m") / "corner.pt")
    return load_classifier(path)


def _field(artefact: bool) -> tuple[np.ndarray, np.ndarray]:
    """A treated foci field (raw uint16) with or without the corner artefact, and its foci mask."""
    f = synth.generate_field("foci", True, size=64, seed=11)
    im = f.image.astype(np.float64)
    if artefact:
        im[0, :P, :P] += 2000.0
    return np.clip(im, 0, 65535).astype(np.uint16), f.labels["gt"] > 0


def test_the_model_decides_on_the_artefact_with_huge_confidence(corner_model):
    with torch.no_grad():
        on = corner_model.field_logits(corner_model.prepare(_field(True)[0][None]))[0]
        off = corner_model.field_logits(corner_model.prepare(_field(False)[0][None]))[0]
    assert float(on[1] - on[0]) > 500  # treated, extremely confident
    assert float(off[1] - off[0]) < 0  # same foci, no artefact: control


@pytest.mark.parametrize("method", [*METHODS, *COMPARISON_METHODS])
def test_every_method_points_at_the_artefact_not_the_foci(corner_model, method):
    reason = unavailable_reason(method, corner_model)
    if reason:  # PixelCAM needs a localize head, Grad-CAM a plain nn.Module: said, not silent
        assert method in ("pixelcam", "gradcam") and len(reason) > 20
        pytest.skip(reason)
    image, foci = _field(True)
    artefact = np.zeros(foci.shape, bool)
    artefact[:P, :P] = True
    amap = np.asarray(explain(corner_model, image, method=method, target="treated",
                              **FAST.get(method, {})).maps[0, 0])
    s = metrics.normalize_map(amap)
    assert s.max() > s.min(), f"{method}: flat map"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        assert metrics.pointing_game(amap, artefact) == 1.0, method
        assert metrics.relevance_rank_accuracy(amap, artefact) > 0.9, method
        assert s[artefact].sum() / s.sum() > 0.5, method
        # ... and not on the phenotype: the foci get no more than chance precision.
        assert metrics.pxap(amap, foci & ~artefact) < 3 * foci.mean(), method
