"""Bounded memory: tiles go through the model in batches, PCIM's chunked objective equals the
whole one, and a job that cannot fit is refused before any compute."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from known_answer import S, X0, Y0, SquareMarker

from napari_pcim.classifier import load_classifier, save_classifier
from napari_pcim.classifier_meta import ClassifierMeta
from napari_pcim.explainers import explain
from napari_pcim.tiling import TilePlan

CHANNELS = ["DAPI", "Actin", "GFP", "Brightfield"]
BATCH = 4


def _meta() -> dict:
    return {"channels": CHANNELS, "input_size": [64, 64],
            "normalization": {"mean": [100.0] * 4, "std": [50.0] * 4},
            "classes": ["control", "treated"], "field_mode": "tile", "tile_overlap": 16}


class AtMostFour(torch.nn.Module):
    """SquareMarker's logits, refusing any batch of more than four tiles."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = SquareMarker(Y0, X0, S)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        torch._assert(x.shape[0] <= 4, "more than batch_size=4 tiles in one model call")
        return self.inner(x)


def _raw(size: int = 150, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    f = (100 + 15 * rng.standard_normal((4, size, size))).clip(0).astype(np.uint16)
    f[2, 20:60, 30:70] += 150
    f[2, 100:130, 90:140] += 120
    return f


@pytest.fixture(scope="module")
def small_batch_clf(tmp_path_factory):
    return load_classifier(save_classifier(AtMostFour(), _meta(), tmp_path_factory.mktemp("m") / "b4.pt"))


@pytest.mark.parametrize("method,opts", [("pcim", {"steps": 2}), ("rise", {"n_masks": 8})])
def test_probability_pass_and_methods_send_at_most_batch_size_tiles(small_batch_clf, method, opts):
    field = _raw()
    assert TilePlan.for_classifier(small_batch_clf.meta, field.shape[1:]).n_tiles > BATCH
    attr = explain(small_batch_clf, field, method=method, batch_size=BATCH, **opts)
    assert np.isfinite(attr.maps).all()
    probs = small_batch_clf.predict_proba([field, field], batch_size=BATCH)
    np.testing.assert_allclose(probs, np.repeat(attr.probabilities, 2, axis=0), rtol=1e-5)


@pytest.mark.parametrize("opts", [
    {"mixing": "linear", "tv": 0.0},
    {"mixing": "saturating", "tv": 0.05, "readout": "mask"},
])
def test_chunked_pcim_equals_unchunked(tmp_path, opts):
    clf = load_classifier(save_classifier(SquareMarker(Y0, X0, S), _meta(), tmp_path / "sq.pt"))
    fields = np.stack([_raw(seed=0), _raw(seed=1)])
    n_tiles = TilePlan.for_classifier(clf.meta, fields.shape[2:]).n_tiles
    whole = explain(clf, fields, method="pcim", steps=4, batch_size=2 * n_tiles, **opts)
    chunked = explain(clf, fields, method="pcim", steps=4, batch_size=3, **opts)
    assert whole.n_forward == chunked.n_forward  # one model pass per tile and step, chunked or not
    np.testing.assert_allclose(chunked.maps, whole.maps, rtol=1e-4, atol=1e-5)


def test_explain_refuses_a_job_that_cannot_fit_in_memory(tmp_path):
    clf = load_classifier(save_classifier(SquareMarker(Y0, X0, S), _meta(), tmp_path / "sq.pt"))
    huge = np.broadcast_to(np.uint16(100), (4, 300_000, 300_000))  # no memory behind it
    with pytest.raises(ValueError, match=r"^this explain job needs about [\d.]+ GiB .* GiB of cpu "
                                         r"memory is free; lower batch_size \(now 16\)"):
        explain(clf, huge, method="rise", n_masks=2, device="cpu")


def test_lazy_tiles_equal_split():
    meta = ClassifierMeta.from_dict(_meta(), source="test")
    x = torch.randn(2, 4, 150, 130)
    plan = TilePlan.for_classifier(meta, (150, 130))
    tiles, whole = plan.tiles(x), plan.split(x)
    assert tiles.shape == whole.shape and len(tiles) == whole.shape[0]
    torch.testing.assert_close(tiles[3:11], whole[3:11], rtol=0, atol=0)
    torch.testing.assert_close(tiles[torch.tensor([0, 17, 5])], whole[[0, 17, 5]], rtol=0, atol=0)
    torch.testing.assert_close(tiles[-1], whole[-1], rtol=0, atol=0)
