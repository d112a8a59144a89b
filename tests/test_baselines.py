"""Tests of napari_pcim.explainers.captum_methods: captum methods on TorchScript models, checked against
closed forms on a linear model, plus Grad-CAM's TorchScript refusal and input errors."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from napari_pcim.explainers import captum_methods as baselines
from napari_pcim.baseline_images import make_baseline


class Linear(torch.nn.Module):
    """logits = [0, Σ w·x]: every attribution method has a closed form."""

    def __init__(self, w: torch.Tensor) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(w, requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = (x * self.w).flatten(1).sum(dim=1)
        return torch.stack([torch.zeros_like(t), t], dim=1)


class TinyCNN(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv1 = torch.nn.Conv2d(2, 4, 3, padding=1)
        self.conv2 = torch.nn.Conv2d(4, 4, 3, padding=1)
        self.head = torch.nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.conv2(torch.relu(self.conv1(x))))
        return self.head(h.mean(dim=(2, 3)))


@pytest.fixture(scope="module")
def linear_setup():
    g = torch.Generator().manual_seed(1)
    w = torch.randn(2, 8, 8, generator=g)
    x = torch.randn(2, 2, 8, 8, generator=g)
    return torch.jit.script(Linear(w).eval()), w, x


def test_saliency_and_input_x_gradient_closed_form(linear_setup):
    model, w, x = linear_setup
    sal = baselines.attribute_baseline("saliency", model, x, [1, 1])
    assert sal.shape == (2, 8, 8) and sal.dtype == np.float32
    np.testing.assert_allclose(sal, np.broadcast_to(w.abs().sum(0).numpy(), (2, 8, 8)), rtol=1e-5)
    ixg = baselines.attribute_baseline("input_x_gradient", model, x, 1)
    np.testing.assert_allclose(ixg, (x * w).sum(1).numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kind", ["median", "zero"])
def test_integrated_gradients_and_occlusion_closed_form(linear_setup, kind):
    model, w, x = linear_setup
    base = make_baseline(x, kind)
    expected = ((x - base) * w).sum(1).numpy()  # exact for a linear model
    ig = baselines.attribute_baseline(
        "integrated_gradients", model, x, [1, 1], baseline=kind, n_steps=8
    )
    np.testing.assert_allclose(ig, expected, rtol=1e-4, atol=1e-4)
    occ = baselines.attribute_baseline(
        "occlusion", model, x, [1, 1], baseline=kind, window=1, stride=1
    )
    np.testing.assert_allclose(occ, expected, rtol=1e-4, atol=1e-4)


def test_feature_ablation_gives_each_region_its_total(linear_setup):
    model, w, x = linear_setup
    regions = np.zeros((8, 8), np.int32)
    regions[1:4, 1:4] = 7  # labels need not be consecutive
    regions[5:, 4:] = 3
    fa = baselines.attribute_baseline("feature_ablation", model, x, [1, 1], regions=regions)
    contrib = ((x - make_baseline(x, "median")) * w).sum(1).numpy()
    for b in range(2):
        for label in (0, 3, 7):
            inside = regions == label
            total = contrib[b][inside].sum()
            np.testing.assert_allclose(fa[b][inside], total, rtol=1e-4, atol=1e-4)
    with pytest.raises(baselines.BaselineError, match="regions"):
        baselines.attribute_baseline("feature_ablation", model, x, [1, 1])
    with pytest.raises(baselines.BaselineError, match="label image"):
        baselines.attribute_baseline("feature_ablation", model, x, [1, 1], regions=regions[:4])


def test_integrated_gradients_completeness_on_a_cnn():
    model = torch.jit.script(TinyCNN().eval())
    x = torch.randn(1, 2, 12, 12, generator=torch.Generator().manual_seed(2))
    ig = baselines.attribute_baseline(
        "integrated_gradients", model, x, [1], baseline="zero", n_steps=64
    )
    with torch.no_grad():
        gap = float(model(x)[0, 1] - model(torch.zeros_like(x))[0, 1])
    assert ig.sum() == pytest.approx(gap, rel=0.05, abs=1e-3)


def test_probability_output_changes_the_scale(linear_setup):
    model, w, x = linear_setup
    logit = baselines.attribute_baseline("saliency", model, x[:1], [1])
    prob = baselines.attribute_baseline("saliency", model, x[:1], [1], output="probability")
    with torch.no_grad():
        p = torch.softmax(model(x[:1]), 1)[0, 1].item()
    # d softmax_1 / dx = p (1 - p) dlogit_1 / dx for a two-class model with a zero logit.
    np.testing.assert_allclose(prob, logit * p * (1 - p), rtol=1e-4)


def test_gradcam_refuses_torchscript_and_works_on_nn_module():
    net = TinyCNN().eval()
    x = torch.randn(2, 2, 12, 12, generator=torch.Generator().manual_seed(3))
    with pytest.raises(baselines.BaselineError, match="TorchScript"):
        baselines.attribute_baseline("gradcam", torch.jit.script(net), x, [1, 0])
    with pytest.raises(baselines.BaselineError, match="nn.Module"):
        baselines.attribute_baseline("gradcam", lambda t: net(t), x, [1, 0])
    cam = baselines.attribute_baseline("gradcam", net, x, [1, 0])
    assert cam.shape == (2, 12, 12)
    assert np.all(cam >= -1e-6)  # ReLU'd Grad-CAM
    assert baselines.gradcam_layer(net) is net.conv2


def test_bad_method_options_and_targets(linear_setup):
    model, _, x = linear_setup
    with pytest.raises(baselines.BaselineError, match="unknown baseline method"):
        baselines.attribute_baseline("lime", model, x, [1, 1])
    with pytest.raises(baselines.BaselineError, match="unknown option"):
        baselines.attribute_baseline("saliency", model, x, [1, 1], n_steps=3)
    with pytest.raises(baselines.BaselineError, match="target has 3"):
        baselines.attribute_baseline("saliency", model, x, [1, 1, 0])
    with pytest.raises(baselines.BaselineError, match="window"):
        baselines.attribute_baseline("occlusion", model, x, [1, 1], window=20)


def test_missing_captum_names_the_extra(linear_setup, monkeypatch):
    model, _, x = linear_setup
    monkeypatch.setitem(sys.modules, "captum", None)  # makes `import captum` fail
    monkeypatch.setitem(sys.modules, "captum.attr", None)
    with pytest.raises(ImportError, match=r"pip install napari-pcim\[baselines\]"):
        baselines.attribute_baseline("saliency", model, x, [1, 1])
