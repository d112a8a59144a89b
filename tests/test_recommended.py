"""A model's recommended explainer options (metadata ``explainer_options``): they replace
the method's defaults for that model, the caller's options win, and bad ones are named."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_pcim.classifier import bundled_model_path, load_classifier, save_classifier
from napari_pcim.explainers import explain
from napari_pcim.explainers.recommended import RECOMMENDED_KEY, recommended_options
from napari_pcim.explainers.rise import RISEOptions


class Spot(torch.nn.Module):
    """Scores the mean of channel 0: (B, 2, 32, 32) -> (B, 2) logits."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = x[:, 0].mean(dim=(1, 2))
        return torch.stack([-m, m], dim=1)


def _model(tmp_path, recommended, name="spot.pt"):
    meta = {"channels": ["DAPI", "GFP"], "input_size": [32, 32], "classes": ["control", "treated"],
            "normalization": {"mean": [0.0, 0.0], "std": [1.0, 1.0]}}
    if recommended is not None:
        meta[RECOMMENDED_KEY] = recommended
    return load_classifier(save_classifier(Spot(), meta, tmp_path / name))


def _field():
    rng = np.random.default_rng(0)
    return rng.normal(size=(2, 32, 32)).astype(np.float32)


def test_recommended_options_replace_the_defaults_and_the_callers_win(tmp_path):
    clf = _model(tmp_path, {"rise": {"grid": 4, "p": 0.5}})
    assert (RISEOptions().grid, RISEOptions().p) != (4, 0.5)  # else this test proves nothing
    attr = explain(clf, _field(), method="rise", n_masks=64, device="cpu")
    assert (attr.options["grid"], attr.options["p"]) == (4, 0.5)
    assert attr.info["recommended_by_model"] == {"grid": 4, "p": 0.5}
    mine = explain(clf, _field(), method="rise", n_masks=64, grid=8, device="cpu")
    assert (mine.options["grid"], mine.options["p"]) == (8, 0.5)
    assert mine.info["recommended_by_model"] == {"p": 0.5}
    # the Explain form passes every value, the recommended ones included: still recorded
    # (they were not, once: GUI layers said no option came from the model)
    form_like = explain(clf, _field(), method="rise", n_masks=64, grid=4, p=0.5, device="cpu")
    assert form_like.info["recommended_by_model"] == {"grid": 4, "p": 0.5}
    # other methods keep their defaults
    assert explain(clf, _field(), method="pcim", device="cpu").info["recommended_by_model"] == {}


@pytest.mark.parametrize("bad,match", [
    ({"rsie": {"grid": 4}}, r"unknown method\(s\) \['rsie'\]"),
    ({"rise": {"grids": 4}}, r"gives rise unknown option\(s\) \['grids'\]"),
    ({"rise": {"grid": 0}}, r"grid"),
    ({"rise": 8}, r"must map method names to option objects"),
])
def test_a_bad_recommendation_is_one_line_naming_the_model_and_option(tmp_path, bad, match):
    clf = _model(tmp_path, bad)
    with pytest.raises(ValueError, match=match) as err:
        explain(clf, _field(), method="pcim", device="cpu")  # any method: the whole entry is checked
    assert str(clf.path) in str(err.value) and "\n" not in str(err.value)


def test_the_bundled_worms_model_recommends_large_rise_masks():
    worms = load_classifier(bundled_model_path("worms_vgg"))
    assert recommended_options(worms, "rise") == {"grid": 8, "p": 0.5, "tolerance": 0.1}
    assert recommended_options(load_classifier(bundled_model_path("foci_vgg")), "rise") == {}


def test_every_bundled_model_carries_exactly_the_training_recommendation():
    """The bundled files and training's RECOMMENDED (which retraining writes) agree."""
    from napari_pcim.classifier import bundled_models
    from napari_pcim.training.classifier_training import RECOMMENDED

    assert set(RECOMMENDED) <= set(bundled_models())
    for name, path in bundled_models().items():
        clf = load_classifier(path)
        assert clf.meta.extra.get(RECOMMENDED_KEY) == RECOMMENDED.get(name), name


def test_a_recommended_smooth_reaches_the_pcim_map(tmp_path):
    """PCIM's σ from the metadata is used (and recorded), and equals passing it by hand."""
    clf = _model(tmp_path, {"pcim": {"smooth": 2.0}})
    mine = explain(clf, _field(), method="pcim", device="cpu")
    assert mine.options["smooth"] == 2.0 and mine.info["recommended_by_model"] == {"smooth": 2.0}
    plain = _model(tmp_path, None, name="plain.pt")
    by_hand = explain(plain, _field(), method="pcim", device="cpu", smooth=2.0)
    np.testing.assert_allclose(mine.maps, by_hand.maps, atol=1e-6)
    assert not np.allclose(explain(plain, _field(), method="pcim", device="cpu").maps, mine.maps)
