"""The method registry: one entry per method, options from one place, explain() without
method branches, the captum methods through explain(), and adding a method in one place."""

from __future__ import annotations

import hashlib
import inspect
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch

from known_answer import S, X0, Y0, SquareMarker

from napari_pcim.classifier import (
    Classifier,
    ClassifierMeta,
    bundled_model_path,
    load_classifier,
    save_classifier,
)
from napari_pcim.explainers import (
    COMPARISON_METHODS,
    METHOD_LABELS,
    METHOD_OPTIONS,
    METHODS,
    Cancelled,
    api,
    explain,
    get_explainer,
    method_label,
    options_class,
    unavailable_reason,
)
from napari_pcim.explainers import registry
from napari_pcim.explainers.options import option_specs, validate_options
from napari_pcim.synth import generate_field

ALL = (*METHODS, *COMPARISON_METHODS)
META = {"channels": ["DAPI", "Actin", "GFP", "Brightfield"], "input_size": [64, 64],
        "normalization": {"mean": [100.0] * 4, "std": [50.0] * 4},
        "classes": ["control", "treated"], "field_mode": "tile", "tile_overlap": 16}


class TinyCNN(torch.nn.Module):
    """A plain nn.Module with conv layers (Grad-CAM can hook them) reading the marker."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv1 = torch.nn.Conv2d(4, 4, 3, padding=1)
        self.conv2 = torch.nn.Conv2d(4, 4, 3, padding=1)
        self.head = torch.nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.conv2(torch.relu(self.conv1(x))))
        return self.head(h.mean(dim=(2, 3)))


@pytest.fixture(scope="module")
def square_clf(tmp_path_factory):
    path = tmp_path_factory.mktemp("m") / "square.pt"
    return load_classifier(save_classifier(SquareMarker(Y0, X0, S), META, path))


@pytest.fixture(scope="module")
def module_clf(tmp_path_factory):
    """A Classifier around a plain (not TorchScript) nn.Module, as Grad-CAM needs."""
    path = Path(tmp_path_factory.mktemp("m")) / "plain.pt"
    return Classifier(TinyCNN().eval(), ClassifierMeta.from_dict(META), path,
                      hashlib.sha256(b"plain").hexdigest(), torch.device("cpu"))


def _raw(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    f = (100 + 15 * rng.standard_normal((4, 64, 64))).clip(0).astype(np.uint16)
    f[2, Y0 : Y0 + S, X0 : X0 + S] += 150
    return f


def test_registry_names_labels_and_options_cover_every_method():
    assert METHODS == ("pcim", "rise", "pixelcam")
    assert COMPARISON_METHODS == ("saliency", "input_x_gradient", "integrated_gradients",
                                  "occlusion", "feature_ablation", "gradcam")
    assert set(METHOD_OPTIONS) == set(METHOD_LABELS) == set(ALL)
    assert [method_label(m) for m in ALL] == [
        "PCIM", "RISE", "PixelCAM", "Saliency", "Input×Gradient", "Integrated Gradients",
        "Occlusion", "Feature ablation", "Grad-CAM"]
    for name in ALL:
        entry = get_explainer(name)
        assert entry.name == name and options_class(name) is entry.options_cls
        assert entry.comparison == (name in COMPARISON_METHODS)
        for f in entry.options_cls.__dataclass_fields__.values():
            assert f.metadata.get("help"), f"{name}.{f.name} lacks a help string"
    with pytest.raises(ValueError, match="unknown method 'lime'"):
        get_explainer("lime")


@pytest.mark.parametrize("name", ALL)
def test_defaults_validate_and_explain_accepts_them(name, square_clf, module_clf):
    opts = options_class(name)()
    validate_options(opts, name)
    clf = module_clf if name == "gradcam" else square_clf
    reason = unavailable_reason(name, clf)
    if reason:  # PixelCAM without a localize head: refused before any compute, saying why
        assert name == "pixelcam" and "localize" in reason
        with pytest.raises(ValueError, match="no 'localize' pixel head"):
            explain(clf, _raw(), method=name)
        return
    attr = explain(clf, _raw(), method=name, target="treated", device="cpu")
    assert attr.maps.shape == (1, 1, 64, 64) and np.isfinite(attr.maps).all()
    assert attr.method == name and attr.label(0).startswith(method_label(name))
    assert attr.n_forward > 0


def test_main_options_and_gui_flags():
    main = {n: {s.name for s in option_specs(options_class(n)) if s.main} for n in ("pcim", "rise")}
    assert main["pcim"] == {"steps", "budget", "starts", "smooth", "baseline"}
    assert main["rise"] == {"n_masks", "grid", "p", "baseline"}
    assert not {s.name: s for s in option_specs(options_class("rise"))}["regions"].gui


def test_explain_has_no_method_branches():
    source = Path(api.__file__).read_text(encoding="utf-8")
    for name in ALL:
        assert f'"{name}"' not in source and f"'{name}'" not in source, name
    assert "pcim" not in inspect.getsource(api.explain).lower().replace("napari_pcim", "")


def test_captum_method_through_explain_on_a_bundled_model():
    clf = load_classifier(bundled_model_path("foci_vgg"))
    field_ = generate_field("foci", True, size=160, seed=3).image  # 160² → four 128² tiles
    attr = explain(clf, field_, method="input_x_gradient", target="treated", device="cpu")
    assert attr.maps.shape == (1, 1, 160, 160) and np.isfinite(attr.maps).all()
    assert np.abs(attr.maps).max() > 0


def test_unavailable_methods_say_why(square_clf, module_clf):
    assert unavailable_reason("pcim", square_clf) == ""
    assert "localize" in unavailable_reason("pixelcam", square_clf)
    assert "TorchScript" in unavailable_reason("gradcam", square_clf)
    assert unavailable_reason("gradcam", module_clf) == ""
    with pytest.raises(ValueError, match="Grad-CAM needs a plain torch.nn.Module"):
        explain(square_clf, _raw(), method="gradcam")


def test_captum_progress_cancel_and_regions(square_clf):
    calls: list[tuple[int, int]] = []
    explain(square_clf, [_raw(0), _raw(1)], method="saliency", target="all",
            progress=lambda d, t: calls.append((d, t)))
    assert calls and calls[-1][0] == calls[-1][1]
    with pytest.raises(Cancelled):
        explain(square_clf, _raw(), method="occlusion", should_stop=lambda: True)
    labels = np.zeros((64, 64), np.int32)
    labels[Y0 : Y0 + S, X0 : X0 + S] = 5
    attr = explain(square_clf, _raw(), method="feature_ablation", target="treated", regions=labels)
    inside = attr.maps[0, 0][Y0 : Y0 + S, X0 : X0 + S]
    assert np.allclose(inside, inside.flat[0]) and inside.flat[0] > attr.maps[0, 0][0, 0]
    with pytest.raises(ValueError, match="regions must be a label image"):
        explain(square_clf, _raw(), method="feature_ablation", regions=np.zeros((9, 9), int))
    with pytest.raises(ValueError, match="window=80 is larger than the tile side 64"):
        explain(square_clf, _raw(), method="occlusion", window=80)


@dataclass
class ConstantOptions:
    """A toy method's options."""

    value: float = field(default=1.0, metadata={"help": "the map's value", "min": 0})


def test_a_new_method_is_one_registry_entry(square_clf):
    def attribute(job: registry.Job, opts: ConstantOptions) -> torch.Tensor:
        job.stats["forward_passes"] = 0
        return torch.full((*job.targets.shape, *job.tiles.shape[-2:]), opts.value)

    registry.register(registry.Explainer("constant", "Constant", ConstantOptions, attribute,
                                         needs_baseline=False))
    try:
        attr = explain(square_clf, _raw(), method="constant", value=2.0)
        assert np.all(attr.maps == 2.0) and attr.label(0) == "Constant · treated"
        with pytest.raises(ValueError, match=r"Constant option value=-1\.0 is invalid"):
            explain(square_clf, _raw(), method="constant", value=-1.0)
    finally:
        for table in (registry._REGISTRY, registry.METHOD_OPTIONS, registry.METHOD_LABELS):
            table.pop("constant")
