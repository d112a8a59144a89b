"""Nothing non-finite passes silently: NaN/inf from the model, in a map or in float64 input stops the job.

The models here are scripted in the test. Each one is finite on zeros, so the
loader's dry run passes, and goes wrong only on real data: the case of issue 15.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_pcim.classifier import ClassifierError, load_classifier, save_classifier
from napari_pcim.explainers import PCIMOptions, RISEOptions, explain
from napari_pcim.explainers.options import option_specs, parse_option

CHANNELS = ["DAPI", "Actin", "GFP", "Brightfield"]
META = {"channels": CHANNELS, "input_size": [32, 32],
        "normalization": {"mean": [0.0] * 4, "std": [1.0] * 4},
        "classes": ["control", "treated"], "field_mode": "tile", "tile_overlap": 8}


def _logits(x: torch.Tensor) -> torch.Tensor:
    z = x[:, 2].mean(dim=(1, 2)) / 1000.0
    return torch.stack([-z, z], dim=1)


class NaNOnRealData(torch.nn.Module):
    """NaN logits on any non-zero input; finite on the loader's zeros."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = _logits(x)
        real = x.abs().flatten(1).sum(dim=1, keepdim=True) > 0
        return torch.where(real, torch.full_like(logits, float("nan")), logits)


class NaNOnMixedData(torch.nn.Module):
    """NaN logits (and gradients) when a pixel lies strictly between 100 and 900 (a mixed or
    masked field of 1000s and 0s); finite on zeros and on a field of 1000s."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        between = ((x > 100) & (x < 900)).flatten(1).any(dim=1, keepdim=True)
        nan = torch.full_like(between, float("nan"), dtype=x.dtype)
        return _logits(x) * torch.where(between, nan, torch.ones_like(nan))


class NaNGradients(torch.nn.Module):
    """Finite logits everywhere, NaN gradients (0 · d√u/du at u = 0)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        poison = torch.sqrt(x - x).mean(dim=(1, 2, 3))
        return _logits(x) + 0.0 * poison[:, None]


def _load(tmp_path, module: torch.nn.Module, name: str):
    return load_classifier(save_classifier(module, META, tmp_path / f"{name}.pt"))


def _field(value: int = 1000, size: int = 48) -> np.ndarray:
    return np.full((4, size, size), value, np.uint16)


@pytest.mark.parametrize("method,opts", [("pcim", {"steps": 2}), ("rise", {"n_masks": 4}),
                                         ("saliency", {})])
def test_nan_logits_on_real_data_stop_explain_in_probability_pass(tmp_path, method, opts):
    clf = _load(tmp_path, NaNOnRealData(), "nan")
    with pytest.raises(ValueError, match=r"the classifier .*nan\.pt returned NaN logits for B03 f0 "
                                         r"on its own input \(probability pass\)"):
        explain(clf, _field(), method=method, field_names=["B03 f0"], **opts)


def test_nan_logits_name_the_field_by_default(tmp_path):
    clf = _load(tmp_path, NaNOnRealData(), "nan")
    with pytest.raises(ValueError, match=r"returned NaN logits for field 1 on its own input"):
        explain(clf, [_field(0), _field(1000)], method="rise", n_masks=2)
    with pytest.raises(ValueError, match=r"field_names has 1 name\(s\) for 2 field\(s\)"):
        explain(clf, [_field(0), _field(1000)], method="rise", n_masks=2, field_names=["B03 f0"])


def test_predict_proba_refuses_nan_logits(tmp_path):
    clf = _load(tmp_path, NaNOnRealData(), "nan")
    with pytest.raises(ValueError, match=r"nan\.pt returned NaN logits for field 1 on its own input "
                                         r"\(predict_proba\)"):
        clf.predict_proba([_field(0), _field(1000)])


def test_nan_logits_on_a_mixed_input_stop_pcim(tmp_path):
    clf = _load(tmp_path, NaNOnMixedData(), "mixed")
    field = _field()
    assert np.isfinite(clf.predict_proba(field)).all()  # the field itself is fine
    with pytest.raises(ValueError, match=r"mixed\.pt returned NaN logits for B03 f0 on a mixed input "
                                         r"\(PCIM\)"):
        explain(clf, field, method="pcim", steps=2, budget=0.5, baseline="zero", field_names=["B03 f0"])


def test_nan_logits_on_a_masked_input_stop_rise(tmp_path):
    clf = _load(tmp_path, NaNOnMixedData(), "mixed")
    with pytest.raises(ValueError, match=r"mixed\.pt returned NaN logits for B03 f0 on a masked input "
                                         r"\(RISE\)"):
        explain(clf, _field(), method="rise", n_masks=4, baseline="zero", field_names=["B03 f0"])


def test_nan_on_the_integrated_gradients_path_stops_explain(tmp_path):
    clf = _load(tmp_path, NaNOnMixedData(), "mixed")
    with pytest.raises(ValueError, match=r"mixed\.pt returned NaN gradients or scores for B03 f0 .*"
                                         r"\(integrated_gradients\)"):
        explain(clf, _field(), method="integrated_gradients", baseline="zero",
                field_names=["B03 f0"])


def test_nan_gradients_give_no_nan_map(tmp_path):
    clf = _load(tmp_path, NaNGradients(), "grad")
    with pytest.raises(ValueError, match=r"the PCIM map of B03 f0 holds NaN values"):
        explain(clf, _field(), method="pcim", steps=1, field_names=["B03 f0"])
    with pytest.raises(ValueError, match=r"grad\.pt returned NaN logits for B03 f0 on a mixed input"):
        explain(clf, _field(), method="pcim", steps=3, field_names=["B03 f0"])


def test_float64_field_overflowing_float32_is_refused(tmp_path):
    clf = _load(tmp_path, NaNGradients(), "grad")
    field = np.full((4, 48, 48), 1000.0)
    field[2, 5, 5] = 1e300
    with pytest.raises(ValueError, match=r"^B03 f0, channel 2 \('GFP'\) has values up to 1e\+300, "
                                         r"beyond float32's range"):
        explain(clf, field, method="rise", n_masks=2, field_names=["B03 f0"])
    with pytest.raises(ClassifierError, match=r"field 0, channel 2: values are not finite in float32"):
        clf.predict_proba(field)


@pytest.mark.parametrize("method,name,text", [
    ("pcim", "lr", "Infinity"),
    ("pcim", "blur_sigma", "-3"),
    ("pcim", "temperature", "Infinity"),
    ("rise", "grid", "1000"),
], ids=["lr=Infinity", "blur_sigma=-3", "temperature=Infinity", "grid=1000"])
def test_set_degenerate_option_is_refused_before_compute(tmp_path, method, name, text):
    clf = _load(tmp_path, NaNOnRealData(), "nan")  # would fail loudly if anything ran
    cls = PCIMOptions if method == "pcim" else RISEOptions
    spec = {s.name: s for s in option_specs(cls)}[name]
    value = parse_option(spec, text)
    with pytest.raises(ValueError, match=rf"option {name}={value!r} is invalid: expected"):
        explain(clf, _field(), method=method, **{name: value})
