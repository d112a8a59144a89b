"""Per-channel attribution: ``explain(..., per_channel=True)`` for every method.

The known answer: a classifier that reads only the GFP channel must get (nearly) all of
its channel importance on GFP, whatever the method, on a single tile and on a tiled field.
"""

from __future__ import annotations

import hashlib
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
from napari_pcim.explainers import COMPARISON_METHODS, METHODS, explain
from napari_pcim.synth import generate_field
from napari_pcim.vocabulary import DEMO_CHANNELS, DEMO_CLASSES

GFP = DEMO_CHANNELS.index("GFP")
META = {"channels": list(DEMO_CHANNELS), "input_size": [64, 64],
        "normalization": {"mean": [100.0] * 4, "std": [50.0] * 4},
        "classes": list(DEMO_CLASSES), "field_mode": "tile", "tile_overlap": 16}
#: Fast settings: the known answer does not need the defaults' precision.
FAST = {"rise": {"n_masks": 400}, "integrated_gradients": {"n_steps": 8}}
DECOMPOSED = ("pcim", "saliency", "input_x_gradient", "integrated_gradients")


class GFPOnlyWithHead(SquareMarker):
    """:class:`SquareMarker` (GFP in one square, nothing else) plus a PixelCAM head on GFP."""

    @torch.jit.export
    def localize(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(x[:, 2] - 1.5)


class GFPOnlyCNN(torch.nn.Module):
    """A plain nn.Module (Grad-CAM can hook its conv) that looks at GFP only."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 1, 3, padding=1, bias=False)
        with torch.no_grad():
            self.conv.weight.fill_(1 / 9)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v = torch.relu(self.conv(x[:, 2:3]))[:, 0, Y0 : Y0 + S, X0 : X0 + S].mean(dim=(1, 2))
        z = v - 1.5
        return torch.stack([-z, z], dim=1)


@pytest.fixture(scope="module")
def gfp_only(tmp_path_factory):
    """The GFP-only classifier as a TorchScript file with napari-pcim metadata (PixelCAM head too)."""
    path = tmp_path_factory.mktemp("m") / "gfp_only.pt"
    return load_classifier(save_classifier(GFPOnlyWithHead(), {**META, "has_localize": True}, path))


@pytest.fixture(scope="module")
def gfp_only_plain(tmp_path_factory):
    """A GFP-only plain nn.Module classifier, as Grad-CAM needs."""
    path = Path(tmp_path_factory.mktemp("m")) / "plain.pt"
    return Classifier(GFPOnlyCNN().eval(), ClassifierMeta.from_dict(META), path,
                      hashlib.sha256(b"gfp-plain").hexdigest(), torch.device("cpu"))


def _field(size: int = 64, seed: int = 0) -> np.ndarray:
    """Raw field: noise in every channel, bright GFP in the model's square, brighter DAPI
    and Actin blobs elsewhere (which the model ignores)."""
    rng = np.random.default_rng(seed)
    f = (100 + 15 * rng.standard_normal((4, size, size))).clip(0).astype(np.uint16)
    f[GFP, Y0 : Y0 + S, X0 : X0 + S] += 150
    f[0, 30:60, 2:30] += 400
    f[1, 2:20, 40:62] += 400
    return f


def _classifier(method, gfp_only, gfp_only_plain):
    return gfp_only_plain if method == "gradcam" else gfp_only


@pytest.mark.parametrize("size", [64, 96], ids=["one-tile", "tiled"])
@pytest.mark.parametrize("method", [*METHODS, *COMPARISON_METHODS])
def test_gfp_only_classifier_gets_90_percent_on_gfp(method, size, gfp_only, gfp_only_plain):
    clf = _classifier(method, gfp_only, gfp_only_plain)
    attr = explain(clf, _field(size), method=method, target="treated", per_channel=True,
                   **FAST.get(method, {}))
    assert attr.channel_names == DEMO_CHANNELS
    assert attr.channel_maps.shape == (1, 1, 4, size, size)
    assert attr.channel_maps.dtype == np.float32
    assert attr.channel_importance.shape == (1, 1, 4)
    share = attr.channel_importance[0, 0]
    assert share.sum() == pytest.approx(1.0, abs=1e-5)
    assert share[GFP] >= 0.9, f"{method}: channel importance {dict(zip(DEMO_CHANNELS, share.round(3)))}"


@pytest.mark.parametrize("method", ["pcim", "saliency", "input_x_gradient", "integrated_gradients",
                                    "rise", "occlusion"])
def test_channel_maps_decompose_or_apportion_the_pixel_map(method, gfp_only):
    attr = explain(gfp_only, _field(96), method=method, target="all", per_channel=True,
                   **FAST.get(method, {}))
    assert attr.channel_maps.shape == (1, 2, 4, 96, 96)
    # Decomposed or apportioned, the channel maps of a target with positive evidence sum to its map.
    t = list(attr.targets[0]).index(DEMO_CLASSES.index("treated"))
    np.testing.assert_allclose(attr.channel_maps[0, t].sum(axis=0), attr.maps[0, t], atol=1e-5, rtol=1e-4)
    if method not in DECOMPOSED:  # apportioned: each channel map is the pixel map times its share
        np.testing.assert_allclose(attr.channel_maps[0, t, GFP],
                                   attr.maps[0, t] * attr.channel_importance[0, t, GFP], rtol=1e-5)
    rows = attr.channel_importance.sum(axis=-1)
    assert np.all(np.isclose(rows, 1.0, atol=1e-5) | (rows == 0)), rows


def test_no_positive_channel_evidence_gives_zero_importance(gfp_only):
    # "control" gains nothing from any channel: ablating GFP raises p(control), so no positive drop.
    attr = explain(gfp_only, _field(), method="occlusion", target="control", per_channel=True)
    np.testing.assert_array_equal(attr.channel_importance, 0.0)
    np.testing.assert_array_equal(attr.channel_maps, 0.0)


def test_per_channel_off_leaves_the_result_unchanged(gfp_only):
    field = _field(96)
    plain = explain(gfp_only, field, method="pcim")
    assert plain.channel_maps is None and plain.channel_importance is None and plain.channel_names is None
    assert plain.options["isolation"] == "pixel"
    assert "channel_importance" not in plain.to_dict()
    # The pixel-channel variant: its pixel map is the sum of its channel maps, and
    # per_channel=True runs exactly that variant (recorded in the options).
    variant = explain(gfp_only, field, method="pcim", isolation="pixel-channel")
    split = explain(gfp_only, field, method="pcim", per_channel=True)
    assert split.options["isolation"] == "pixel-channel"
    np.testing.assert_allclose(split.maps, variant.maps, atol=1e-5)
    assert not np.allclose(split.maps, plain.maps)  # a different formulation, not the default one
    assert split.to_dict()["channel_names"] == list(DEMO_CHANNELS)


def test_foci_vgg_puts_the_largest_share_on_gfp_for_pcim():
    clf = load_classifier(bundled_model_path("foci_vgg"))
    f = generate_field("foci", True, size=256, seed=5)
    attr = explain(clf, f.image, method="pcim", target="treated", per_channel=True,
                   plate_channels=list(f.channel_names))
    share = dict(zip(attr.channel_names, attr.channel_importance[0, 0].round(3).tolist()))
    assert max(share, key=share.get) == "GFP", f"PCIM channel importance on a foci field: {share}"
