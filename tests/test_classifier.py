"""Tests of the classifier contract: metadata, safe loading, tiling, devices.

Every test writes real TorchScript archives (scripted tiny models) to tmp_path.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from torch import nn

from napari_pcim.classifier import (
    ClassifierError,
    ClassifierMeta,
    bundled_model_path,
    load_classifier,
    read_metadata,
    save_classifier,
)
from napari_pcim.devices import DeviceError, available_devices, resolve_device
from napari_pcim.tiling import tile_starts

CHANNELS = ["DAPI", "Actin", "GFP", "Brightfield"]
SIZE = 16


class TinyNet(nn.Module):
    """Position-dependent (flatten + linear) so tiling and resizing change its output."""

    def __init__(self, channels: int = 4, classes: int = 2, size: int = SIZE) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, 3, 3, padding=1)
        self.fc = nn.Linear(3 * size * size, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.conv(x)).flatten(1))


class WrongShape(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(1, 2, 3))  # (B,) instead of (B, K)


def meta_dict(**changes) -> dict:
    base = {
        "channels": list(CHANNELS),
        "input_size": [SIZE, SIZE],
        "normalization": {"mean": [100.0, 200.0, 300.0, 400.0], "std": [10.0, 20.0, 30.0, 40.0]},
        "classes": ["control", "treated"],
        "field_mode": "tile",
        "tile_overlap": 4,
        "has_localize": False,
        "arch": "tiny",
        "description": "test model",
        "seed": 7,
    }
    base.update(changes)
    return base


@pytest.fixture
def model_path(tmp_path):
    torch.manual_seed(0)
    return save_classifier(TinyNet(), meta_dict(), tmp_path / "tiny.pt")


def save_plain(module: nn.Module, path) -> None:
    """A TorchScript archive without napari-pcim metadata."""
    torch.jit.save(torch.jit.script(module.eval()), str(path))


# ----------------------------------------------------------------------------- metadata


def test_metadata_round_trip(model_path):
    clf = load_classifier(model_path)
    saved_with = {"saved_with": {"torch": torch.__version__}}  # the torch that wrote the file
    assert clf.meta.to_dict() == {**meta_dict(), **saved_with}
    assert clf.meta.extra == {"seed": 7, **saved_with}
    assert clf.classes == ["control", "treated"]
    assert clf.meta.input_size == (SIZE, SIZE)
    import hashlib

    assert clf.sha256 == hashlib.sha256(model_path.read_bytes()).hexdigest()
    assert clf.path == model_path
    # metadata is readable without loading the module, and no temp file was left behind
    assert read_metadata(model_path) == clf.meta
    assert sorted(p.name for p in model_path.parent.iterdir()) == ["tiny.pt"]
    umask = os.umask(0)
    os.umask(umask)
    assert model_path.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600


def test_model_from_a_newer_torch_says_which_torch_wrote_it(model_path, tmp_path):
    """An operator this torch lacks (as torch 2.11 lacks 2.13's lanczos upsampling) fails
    torch.jit.load; the error names the torch that saved the file and this one."""
    import zipfile

    future = tmp_path / "future.pt"
    with zipfile.ZipFile(model_path) as src, zipfile.ZipFile(future, "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            if "/code/" in item.filename and item.filename.endswith(".py"):
                data = data.replace(b"torch.relu(", b"torch.relu_from_the_future(")
            dst.writestr(item, data)
    import re

    with pytest.raises(ClassifierError) as err:
        load_classifier(future)
    message = str(err.value)
    assert "\n" not in message  # one line; the compiler's source excerpt stays in the cause
    assert re.search(rf"saved by torch {re.escape(torch.__version__)}, and this is torch "
                     r".*upgrade torch.*Unknown builtin op: aten::relu_from_the_future", message)


def test_sidecar_metadata(tmp_path):
    path = tmp_path / "plain.pt"
    save_plain(TinyNet(), path)
    sidecar = tmp_path / "plain.pt.json"
    sidecar.write_text(json.dumps(meta_dict(arch="from-sidecar")))
    assert load_classifier(path).meta.arch == "from-sidecar"


def test_archive_metadata_wins_over_sidecar(model_path):
    sidecar = model_path.with_name(model_path.name + ".json")
    sidecar.write_text(json.dumps(meta_dict(arch="from-sidecar")))
    with pytest.warns(UserWarning, match="ignored"):
        clf = load_classifier(model_path)
    assert clf.meta.arch == "tiny"


def test_missing_metadata(tmp_path):
    path = tmp_path / "plain.pt"
    save_plain(TinyNet(), path)
    with pytest.raises(ClassifierError, match="no napari-pcim metadata"):
        load_classifier(path)


@pytest.mark.parametrize(
    ("changes", "key"),
    [
        ({"classes": None}, "classes"),
        ({"input_size": "128"}, "input_size"),
        ({"input_size": [SIZE, 0]}, "input_size"),
        ({"normalization": {"mean": [0.0] * 4, "std": [1.0] * 3}}, "normalization.std"),
        ({"normalization": {"mean": [0.0] * 4, "std": [1.0, 1.0, 0.0, 1.0]}}, "normalization.std"),
        ({"channels": ["DAPI", "DAPI", "GFP", "Brightfield"]}, "channels"),
        ({"field_mode": "crop"}, "field_mode"),
        ({"tile_overlap": SIZE}, "tile_overlap"),
        ({"has_localize": "yes"}, "has_localize"),
    ],
)
def test_malformed_metadata_names_the_key(tmp_path, changes, key):
    data = meta_dict(**changes)
    data = {k: v for k, v in data.items() if v is not None}
    path = tmp_path / "plain.pt"
    save_plain(TinyNet(), path)
    (tmp_path / "plain.pt.json").write_text(json.dumps(data))
    with pytest.raises(ClassifierError, match=key.replace(".", r"\.")) as info:
        load_classifier(path)
    assert "plain.pt.json" in str(info.value)
    # save_classifier validates the same way
    with pytest.raises(ClassifierError, match=key.replace(".", r"\.")):
        save_classifier(TinyNet(), data, tmp_path / "other.pt")
    assert not (tmp_path / "other.pt").exists()


def test_sidecar_not_json(tmp_path):
    path = tmp_path / "plain.pt"
    save_plain(TinyNet(), path)
    (tmp_path / "plain.pt.json").write_text("{channels: oops")
    with pytest.raises(ClassifierError, match="not valid JSON"):
        load_classifier(path)


# ----------------------------------------------------------------------------- rejected files


def test_missing_file(tmp_path):
    with pytest.raises(ClassifierError, match="not found"):
        load_classifier(tmp_path / "nope.pt")


def test_random_bytes_rejected(tmp_path):
    path = tmp_path / "noise.pt"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(ClassifierError, match="not a TorchScript archive"):
        load_classifier(path)


class _Trap:
    """Unpickling this object creates a directory: proof that something unpickled it."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_state_dict_rejected_without_unpickling(tmp_path):
    marker = tmp_path / "unpickled"
    path = tmp_path / "weights.pt"
    torch.save({"state_dict": TinyNet().state_dict(), "trap": _Trap(str(marker))}, path)
    (tmp_path / "weights.pt.json").write_text(json.dumps(meta_dict()))  # metadata is fine
    with pytest.raises(ClassifierError, match="torch.save"):
        load_classifier(path)
    assert not marker.exists()
    # the trap is armed: unpickling that file (what napari-pcim never does) fires it
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_wrong_output_shape(tmp_path):
    path = tmp_path / "wrong.pt"
    save_plain(WrongShape(), path)
    (tmp_path / "wrong.pt.json").write_text(json.dumps(meta_dict()))
    with pytest.raises(ClassifierError, match=r"logits shaped \(batch, 2\)"):
        load_classifier(path)
    # three logits for two classes is refused too, and save_classifier refuses to write it
    with pytest.raises(ClassifierError, match=r"returned \(2, 3\)"):
        save_classifier(TinyNet(classes=3), meta_dict(), tmp_path / "three.pt")
    assert not (tmp_path / "three.pt").exists()


def test_has_localize_without_method(tmp_path):
    path = tmp_path / "plain.pt"
    save_plain(TinyNet(), path)
    (tmp_path / "plain.pt.json").write_text(json.dumps(meta_dict(has_localize=True)))
    with pytest.raises(ClassifierError, match="localize"):
        load_classifier(path)


# ----------------------------------------------------------------------------- channels


def test_channel_mismatch_names_missing(model_path):
    with pytest.raises(ClassifierError) as info:
        load_classifier(model_path, channels=["DAPI", "GFP", "Brightfield"])
    msg = str(info.value)
    assert "['Actin']" in msg and "plate channels: ['DAPI', 'GFP', 'Brightfield']" in msg


def test_channel_reorder_and_normalisation(model_path):
    clf = load_classifier(model_path, channels=["GFP", "Brightfield", "dapi", "Actin", "Extra"])
    plate = ["GFP", "Brightfield", "dapi", "Actin", "Extra"]
    assert clf.channel_indices(plate) == [2, 3, 0, 1]
    rng = np.random.default_rng(1)
    raw = rng.integers(0, 1000, size=(2, 5, 8, 9), dtype=np.uint16)
    x = clf.prepare(raw, plate_channels=plate)
    assert x.dtype == torch.float32 and tuple(x.shape) == (2, 4, 8, 9)
    for model_c, plate_c in enumerate([2, 3, 0, 1]):
        expected = (raw[:, plate_c].astype(np.float32) - clf.meta.mean[model_c]) / clf.meta.std[model_c]
        np.testing.assert_allclose(x[:, model_c].numpy(), expected, rtol=1e-6)
    # one field (C, Y, X) keeps its shape
    assert tuple(clf.prepare(raw[0], plate_channels=plate).shape) == (4, 8, 9)
    with pytest.raises(ClassifierError, match="expects 4"):
        clf.prepare(raw)


# ----------------------------------------------------------------------------- field logits


def test_tile_starts():
    assert tile_starts(40, 16, 4) == [0, 12, 24]  # stride 12, last tile flush at 24
    assert tile_starts(30, 16, 4) == [0, 12, 14]  # 12 + 16 < 30, so a flush tile at 14
    assert tile_starts(16, 16, 4) == [0]
    assert tile_starts(10, 16, 4) == [0]
    assert tile_starts(256, 128, 32) == [0, 96, 128]
    with pytest.raises(ValueError):
        tile_starts(40, 16, 16)


def test_tile_mean_equals_hand_computed_mean(model_path):
    clf = load_classifier(model_path)
    x = torch.randn(2, 4, 40, 30, generator=torch.Generator().manual_seed(3))
    per_tile = [
        clf.module(x[:, :, y : y + SIZE, c : c + SIZE]) for y in (0, 12, 24) for c in (0, 12, 14)
    ]
    expected = torch.stack(per_tile).mean(dim=0)
    with torch.no_grad():
        got = clf.field_logits(x)
    torch.testing.assert_close(got, expected.detach())
    # at the input size it is a plain forward
    torch.testing.assert_close(clf.field_logits(x[:, :, :SIZE, :SIZE]), clf.module(x[:, :, :SIZE, :SIZE]))
    # a field smaller than a tile is resized up and still gives (B, K)
    assert tuple(clf.field_logits(x[:, :, :10, :20]).shape) == (2, 2)


def test_resize_mode(tmp_path):
    torch.manual_seed(0)
    clf = load_classifier(save_classifier(TinyNet(), meta_dict(field_mode="resize"), tmp_path / "r.pt"))
    x = torch.randn(1, 4, 40, 30)
    resized = torch.nn.functional.interpolate(x, size=(SIZE, SIZE), mode="bilinear", align_corners=False)
    torch.testing.assert_close(clf.field_logits(x), clf.module(resized))


@pytest.mark.parametrize("mode", ["tile", "resize"])
def test_gradient_flows_through_field_logits(tmp_path, mode):
    torch.manual_seed(0)
    clf = load_classifier(save_classifier(TinyNet(), meta_dict(field_mode=mode), tmp_path / "g.pt"))
    x = torch.randn(2, 4, 40, 30, requires_grad=True)
    clf.field_logits(x)[:, 1].sum().backward()
    assert x.grad is not None and x.grad.shape == x.shape
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_predict_proba(model_path):
    clf = load_classifier(model_path)
    rng = np.random.default_rng(2)
    fields = rng.integers(0, 1000, size=(3, 4, 24, 24), dtype=np.uint16)
    proba = clf.predict_proba(fields, batch_size=2)
    assert proba.shape == (3, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    expected = torch.softmax(clf.field_logits(clf.prepare(fields)), dim=1).detach().numpy()
    np.testing.assert_allclose(proba, expected, rtol=1e-5, atol=1e-6)
    # a list of differently sized fields, and a single field
    mixed = clf.predict_proba([fields[0], fields[1, :, :20, :18]])
    assert mixed.shape == (2, 2)
    np.testing.assert_allclose(mixed[0], proba[0], rtol=1e-5)
    assert clf.predict_proba(fields[0]).shape == (1, 2)


# ----------------------------------------------------------------------------- devices, bundles


def test_devices():
    names = available_devices()
    assert names[:2] == ["auto", "cpu"]
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in {"cpu", "cuda", "mps"}
    with pytest.raises(DeviceError, match="unknown device"):
        resolve_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match="CUDA is not available"):
            resolve_device("cuda:1")


def test_classifier_to_device(model_path):
    clf = load_classifier(model_path).to("cpu")
    assert clf.device == torch.device("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError):
            load_classifier(model_path, device="cuda")


def test_unknown_bundled_model():
    with pytest.raises(ClassifierError, match="available"):
        bundled_model_path("no_such_model")


def test_meta_from_dict_rejects_non_object():
    with pytest.raises(ClassifierError, match="JSON object"):
        ClassifierMeta.from_dict([1, 2, 3])
