"""No flat PCIM maps, ever: an over-confident classifier (logit margins > 50, where
−log p has gradients of 1e-13 and smaller, below Adam's ε) still gets a PCIM map that
varies and localises the foci it uses."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from napari_pcim import metrics, synth
from napari_pcim.classifier import load_classifier, save_classifier
from napari_pcim.explainers import explain


class ConfidentFociNet(torch.nn.Module):
    """Centre-surround spot detector on the foci channel; margin = gain · (spot mass − 0.01)."""

    def __init__(self, gain: float = 20000.0) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(4, 1, 5, padding=2, bias=False)
        with torch.no_grad():
            k = -torch.ones(5, 5) / 24.0
            k[2, 2] = 1.0
            self.conv.weight.zero_()
            self.conv.weight[0, 2] = k
        self.gain = gain

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.gain * (torch.relu(self.conv(x) - 1.0).mean(dim=(1, 2, 3)) - 0.01)
        return torch.stack([-t / 2, t / 2], dim=1)


@pytest.fixture(scope="module")
def confident(tmp_path_factory):
    fields = [synth.generate_field("foci", True, size=64, seed=s) for s in (1, 2)]
    im = np.stack([f.image for f in fields]).astype(np.float64)
    meta = {
        "channels": list(synth.CHANNELS), "input_size": [64, 64],
        "normalization": {"mean": im.mean(axis=(0, 2, 3)).tolist(),
                          "std": im.std(axis=(0, 2, 3)).tolist()},
        "classes": ["control", "treated"], "field_mode": "tile", "tile_overlap": 16,
        "arch": "confident",
    }
    path = save_classifier(ConfidentFociNet().eval(), meta, tmp_path_factory.mktemp("m") / "c.pt")
    return load_classifier(path), fields


def test_margins_are_huge(confident):
    clf, fields = confident
    with torch.no_grad():
        z = clf.field_logits(clf.prepare(np.stack([f.image for f in fields])))
    assert bool(((z[:, 1] - z[:, 0]) > 50).all())
    # p(treated) is 1 in float32: −log p has no usable gradient here.
    assert bool((torch.softmax(z, 1)[:, 1] == 1.0).all())


@pytest.mark.parametrize("i", [0, 1])
def test_pcim_default_map_varies_and_localises(confident, i):
    clf, fields = confident
    f = fields[i]
    amap = np.asarray(explain(clf, f.image, method="pcim", target="treated").maps[0, 0])
    assert np.isfinite(amap).all()
    s = metrics.normalize_map(amap)
    assert s.max() > s.min()  # not flat
    gt = f.labels["gt"] > 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        assert metrics.pxap(amap, gt) > 0.6
        assert metrics.relevance_rank_accuracy(amap, gt) > 0.6
        assert metrics.pointing_game(amap, gt) == 1.0


def test_margin_loss_gradient_does_not_vanish(confident):
    """The same model, the same start: −log p gives a zero step, the margin a real one."""
    from napari_pcim.explainers.pcim import PCIMOptions, pcim_attribute

    clf, fields = confident
    x = clf.prepare(fields[0].image[None])
    one = {"steps": 1, "readout": "mass-change"}
    logp = pcim_attribute(clf.module, x, torch.tensor([[1]]),
                          options=PCIMOptions(loss="log-prob", update="adam", **one))
    margin = pcim_attribute(clf.module, x, torch.tensor([[1]]), options=PCIMOptions(**one))
    assert float(logp.abs().max()) < 1e-6  # Adam on −log p: nothing moved (flat)
    assert float(margin.abs().max()) > 0.05
