"""explain(): input checks, targets, tiling, progress/cancel, reproducibility, devices."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from known_answer import S, X0, Y0, SquareMarker

from napari_pcim.classifier import load_classifier, save_classifier
from napari_pcim.explainers import (
    COMPARISON_METHODS,
    METHOD_OPTIONS,
    METHODS,
    Attribution,
    Cancelled,
    explain,
)

CHANNELS = ["DAPI", "Actin", "GFP", "Brightfield"]
class MarkerAnywhere(torch.nn.Module):
    """Logit of "treated" grows with the positive marker signal anywhere in the tile."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = 8.0 * (torch.relu(x[:, 2]).mean(dim=(1, 2)) - 0.1)
        return torch.stack([-z, z], dim=1)


class ArgmaxModel(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = x[:, 2].flatten(1).argmax(dim=1).float()
        return torch.stack([-z, z], dim=1)


def _meta(mode: str = "tile") -> dict:
    return {"channels": CHANNELS, "input_size": [64, 64],
            "normalization": {"mean": [100.0] * 4, "std": [50.0] * 4},
            "classes": ["control", "treated"], "field_mode": mode, "tile_overlap": 16}


@pytest.fixture(scope="module")
def square_clf(tmp_path_factory):
    path = tmp_path_factory.mktemp("m") / "square.pt"
    return load_classifier(save_classifier(SquareMarker(Y0, X0, S), _meta(), path))


@pytest.fixture(scope="module")
def anywhere_clf(tmp_path_factory):
    path = tmp_path_factory.mktemp("m") / "anywhere.pt"
    return load_classifier(save_classifier(MarkerAnywhere(), _meta(), path))


def _raw(shape=(64, 64), square=(Y0, X0, S), seed=0, distractor=True) -> np.ndarray:
    """Raw uint16 field: background ~100, marker +150 in the square (and in a distractor)."""
    rng = np.random.default_rng(seed)
    f = (100 + 15 * rng.standard_normal((4, *shape))).clip(0).astype(np.uint16)
    y, x, s = square
    f[2, y : y + s, x : x + s] += 150
    if distractor:  # as bright, outside the square: SquareMarker ignores it
        f[2, shape[0] - 20 : shape[0] - 4, 2:18] += 150
    return f


def _inside(a: np.ndarray, y: int, x: int, s: int) -> float:
    a = np.clip(a - np.median(a), 0, None)
    return float(a[y : y + s, x : x + s].sum() / a.sum())


def test_exports_and_defaults():
    assert METHODS == ("pcim", "rise", "pixelcam")
    assert set(METHOD_OPTIONS) == set(METHODS) | set(COMPARISON_METHODS)
    for cls in METHOD_OPTIONS.values():
        for f in cls.__dataclass_fields__.values():
            assert f.metadata.get("help"), f"{cls.__name__}.{f.name} lacks a help string"


@pytest.mark.parametrize("method,opts", [("pcim", {}), ("rise", {"n_masks": 2000})])
def test_known_answer_through_explain(square_clf, method, opts):
    attr = explain(square_clf, _raw(), method=method, device="cpu", **opts)
    assert isinstance(attr, Attribution)
    assert attr.maps.shape == (1, 1, 64, 64) and attr.maps.dtype == np.float32
    assert attr.targets.tolist() == [[1]]  # predicted: treated
    assert attr.probabilities.shape == (1, 2) and attr.probabilities[0, 1] > 0.5
    assert _inside(attr.maps[0, 0], Y0, X0, S) > 0.5
    json.dumps(attr.to_dict())
    assert attr.timings["total"] > 0 and attr.n_forward > 0 and attr.device == "cpu"


@pytest.mark.parametrize("method,opts", [("pcim", {}), ("rise", {"n_masks": 800})])
def test_tiled_field_recovers_square_across_tiles(anywhere_clf, method, opts):
    # 200 × 300 field, 64² tiles overlapping by 16: the square straddles tile borders.
    sq = (80, 130, 40)
    attr = explain(anywhere_clf, _raw((200, 300), sq, distractor=False), method=method, device="cpu", **opts)
    a = attr.maps[0, 0]
    assert a.shape == (200, 300)
    assert np.isfinite(a).all()
    y, x, s = sq
    peak = np.unravel_index(np.argmax(a), a.shape)
    assert y <= peak[0] < y + s and x <= peak[1] < x + s
    inside, outside = a[y : y + s, x : x + s].mean(), np.median(a)
    assert inside > outside + 3 * np.abs(a - outside).mean()


def test_resize_mode_maps_on_field_grid(tmp_path):
    clf = load_classifier(save_classifier(SquareMarker(Y0, X0, S), _meta("resize"), tmp_path / "r.pt"))
    attr = explain(clf, _raw((128, 96)), method="rise", device="cpu", n_masks=64)
    assert attr.maps.shape == (1, 1, 128, 96)


def test_targets_all_name_index_and_batches(square_clf):
    fields = [_raw(seed=0), _raw(seed=1), _raw(seed=2)]
    attr = explain(square_clf, fields, method="pcim", target="all", device="cpu", steps=5)
    assert attr.maps.shape == (3, 2, 64, 64) and attr.targets.tolist() == [[0, 1]] * 3
    assert attr.map(2, "control").shape == (64, 64)
    one = explain(square_clf, np.stack(fields), method="rise", target="control", n_masks=64)
    assert one.targets.tolist() == [[0]] * 3
    assert explain(square_clf, fields[0], method="rise", target=1, n_masks=64).targets.tolist() == [[1]]
    with pytest.raises(ValueError, match="not explained"):
        one.map(0, "treated")


def test_plate_channels_reorder(square_clf):
    f = _raw()
    order = [3, 2, 0, 1]
    a = explain(square_clf, f, method="rise", n_masks=64, seed=5)
    b = explain(square_clf, f[order], method="rise", n_masks=64, seed=5,
                plate_channels=[CHANNELS[i] for i in order])
    np.testing.assert_array_equal(a.maps, b.maps)


def test_same_seed_same_maps(square_clf):
    f = _raw()
    for method, opts in (("rise", {"n_masks": 128}), ("pcim", {"steps": 10})):
        a = explain(square_clf, f, method=method, seed=7, **opts)
        b = explain(square_clf, f, method=method, seed=7, **opts)
        np.testing.assert_array_equal(a.maps, b.maps)


@pytest.mark.parametrize("method,opts", [("pcim", {"steps": 40, "tol": 0.0}),
                                         ("rise", {"n_masks": 200, "batch_size": 16})])
def test_progress_reaches_total_and_cancel_stops(square_clf, method, opts):
    calls: list[tuple[int, int]] = []
    explain(square_clf, _raw(), method=method, progress=lambda d, t: calls.append((d, t)), **opts)
    assert calls and calls[-1][0] == calls[-1][1]
    assert all(b[0] >= a[0] for a, b in zip(calls, calls[1:]))

    after: list[tuple[int, int]] = []
    polls = {"n": 0}

    def should_stop() -> bool:
        polls["n"] += 1
        return polls["n"] > 3

    with pytest.raises(Cancelled):
        explain(square_clf, _raw(), method=method, should_stop=should_stop,
                progress=lambda d, t: after.append((d, t)), **opts)
    assert polls["n"] == 4  # stopped at the first True
    assert len(after) <= 3 and (not after or after[-1][0] < after[-1][1])


def test_bad_inputs(square_clf, tmp_path):
    f = _raw()
    with pytest.raises(ValueError, match="3 channel.*expects 4"):
        explain(square_clf, f[:3])
    with pytest.raises(ValueError, match="GFP"):
        explain(square_clf, f[[0, 1, 3]], plate_channels=["DAPI", "Actin", "Brightfield"])
    bad = f.astype(np.float32)
    bad[2, 5, 5] = np.nan
    with pytest.raises(ValueError, match=r"field 0, channel 2 \('GFP'\) contains NaN"):
        explain(square_clf, bad)
    bad[2, 5, 5] = np.inf
    with pytest.raises(ValueError, match="contains inf"):
        explain(square_clf, [f.astype(np.float32), bad])
    with pytest.raises(ValueError, match="empty field"):
        explain(square_clf, np.zeros((4, 0, 64), np.uint16))
    with pytest.raises(ValueError, match=r"unknown target class 'hit'.*control.*treated"):
        explain(square_clf, f, target="hit")
    with pytest.raises(ValueError, match="out of range"):
        explain(square_clf, f, target=5)
    with pytest.raises(ValueError, match="unknown method"):
        explain(square_clf, f, method="lime")
    with pytest.raises(ValueError, match="Grad-CAM needs a plain torch.nn.Module"):
        explain(square_clf, f, method="gradcam")
    with pytest.raises(ValueError, match=r"unknown pcim option\(s\) \['n_masks'\]"):
        explain(square_clf, f, method="pcim", n_masks=10)
    with pytest.raises(ValueError, match="share one shape"):
        explain(square_clf, [f, f[:, :32]])
    nondiff = load_classifier(save_classifier(ArgmaxModel(), _meta(), tmp_path / "argmax.pt"))
    with pytest.raises(ValueError, match="PCIM needs gradients through the model"):
        explain(nondiff, f, method="pcim")
    explain(nondiff, f, method="rise", n_masks=16)  # RISE needs no gradients


def test_labels_and_slic_segmentation(square_clf):
    f = _raw()
    labels = np.zeros((64, 64), np.int32)
    labels[Y0 : Y0 + S, X0 : X0 + S] = 1
    attr = explain(square_clf, f, method="rise", n_masks=200, segmentation="labels", regions=labels)
    assert _inside(attr.maps[0, 0], Y0, X0, S) > 0.7
    assert "array" in json.dumps(attr.to_dict())  # the label image is summarised, not dumped
    attr = explain(square_clf, f, method="rise", n_masks=64, segmentation="slic", n_segments=30)
    assert attr.maps.shape == (1, 1, 64, 64)
    with pytest.raises(ValueError, match="regions must be a label image"):
        explain(square_clf, f, method="rise", segmentation="labels", regions=np.zeros((10, 10), int))


def test_params_restored(square_clf):
    explain(square_clf, _raw(), method="pcim", steps=3)
    assert all(p.requires_grad for p in square_clf.module.parameters())
    assert all(p.grad is None for p in square_clf.module.parameters())


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu(square_clf):
    f = _raw()
    for method, opts in (("rise", {"n_masks": 256}), ("pcim", {})):
        cpu = explain(square_clf, f, method=method, device="cpu", **opts)
        gpu = explain(square_clf, f, method=method, device="cuda", **opts)
        assert gpu.device.startswith("cuda")
        assert _inside(gpu.maps[0, 0], Y0, X0, S) > 0.5
        np.testing.assert_allclose(gpu.probabilities, cpu.probabilities, atol=1e-3)
    square_clf.to("cpu")
