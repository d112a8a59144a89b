"""The "pixelcam" explainer: the bundled PixelCAM model's pixel head as an attribution map."""

from __future__ import annotations

import numpy as np
import pytest

from napari_pcim import metrics
from napari_pcim.classifier import bundled_model_path, load_classifier
from napari_pcim.explainers import Cancelled, explain
from napari_pcim.synth import generate_field


@pytest.fixture(scope="module")
def pixelcam():
    return load_classifier(bundled_model_path("foci_pixelcam"))


def test_bundled_pixelcam_localises_foci_on_a_tiled_field(pixelcam):
    assert pixelcam.meta.has_localize
    f = generate_field("foci", True, size=256, seed=21)
    attr = explain(pixelcam, f.image, method="pixelcam", target="all",
                   plate_channels=list(f.channel_names))
    assert attr.maps.shape == (1, 2, 256, 256)  # full resolution from 3×3 tiles of 128
    assert attr.label(0, 1) == "PixelCAM · treated"
    fg = attr.maps[0, 1]
    assert 0.0 <= fg.min() and fg.max() <= 1.0
    np.testing.assert_array_equal(attr.maps[0, 0], fg)  # one foreground map for every target
    mask = f.labels["gt"] > 0
    # Far above chance (the foci cover a few % of the field).
    assert metrics.pxap(fg, mask) > 3 * mask.mean()
    assert metrics.roc_auc(fg, mask) > 0.8


def test_pixelcam_refuses_a_classifier_without_localize():
    clf = load_classifier(bundled_model_path("foci_vgg"))
    f = generate_field("foci", True, size=128, seed=1)
    with pytest.raises(ValueError, match="no 'localize' pixel head"):
        explain(clf, f.image, method="pixelcam", plate_channels=list(f.channel_names))


def test_pixelcam_cancel(pixelcam):
    f = generate_field("foci", True, size=256, seed=2)
    with pytest.raises(Cancelled):
        explain(pixelcam, f.image, method="pixelcam", should_stop=lambda: True,
                plate_channels=list(f.channel_names))
