"""Tests of training, export and evaluation of the demo classifiers, and of the bundled models.

Training runs here are tiny (48 fields of 48×48 px, one epoch) so the file stays fast;
the bundled models are checked for their contract and a loose accuracy bound.
"""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
import torch

from napari_pcim.classifier import bundled_models, load_classifier
from napari_pcim.training.architectures import ARCHITECTURES, build_model, count_macs
from napari_pcim.training.classifier_training import (
    EVAL_SEED,
    VAL_SEED_OFFSET,
    evaluate_classifier,
    train_classifier,
)
from napari_pcim.vocabulary import DEMO_CHANNELS, DEMO_CLASSES

BUNDLED = ("foci_vgg", "foci_resnet", "translocation_vgg", "worms_vgg", "foci_vgg16", "foci_resnet18")


def tiny_run(path, seed=0, arch="vgg", progress=None):
    return train_classifier(
        "foci", arch, path, seed=seed, n_train=48, epochs=1, size=48, n_val=8, batch_size=16,
        device="cpu", progress=progress,
    )


def weights(path) -> dict[str, torch.Tensor]:
    return load_classifier(path).module.state_dict()


def test_tiny_training_exports_loadable_model(tmp_path):
    calls = []
    metrics = tiny_run(tmp_path / "m.pt", progress=lambda done, total: calls.append((done, total)))
    assert calls == [(1, 3), (2, 3), (3, 3)]  # 48 fields / batch 16 = 3 steps
    assert 0.0 <= metrics["val_accuracy"] <= 1.0 and metrics["n_val"] == 8
    clf = load_classifier(tmp_path / "m.pt", channels=DEMO_CHANNELS)
    meta = clf.meta
    assert meta.input_size == (48, 48) and meta.field_mode == "tile" and meta.tile_overlap == 12
    assert meta.classes == list(DEMO_CLASSES)
    assert meta.channels == list(DEMO_CHANNELS)
    assert meta.extra["phenotype"] == "foci" and meta.extra["training"]["seed"] == 0
    assert all(s > 0 for s in meta.std)
    # a 100×90 field goes through the tile mean
    proba = clf.predict_proba(np.full((4, 100, 90), 300, np.uint16))
    assert proba.shape == (1, 2)


def test_training_is_reproducible(tmp_path):
    tiny_run(tmp_path / "a.pt", seed=3)
    tiny_run(tmp_path / "b.pt", seed=3)
    tiny_run(tmp_path / "c.pt", seed=4)
    a, b, c = weights(tmp_path / "a.pt"), weights(tmp_path / "b.pt"), weights(tmp_path / "c.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_resnet_trains_and_exports(tmp_path, capsys):
    tiny_run(tmp_path / "r.pt", arch="resnet")
    assert load_classifier(tmp_path / "r.pt").meta.arch == "resnet"
    assert capsys.readouterr().err == ""  # the core draws no progress bar; the CLI does


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_architectures_are_small_differentiable_and_scriptable(arch):
    model = build_model(arch).eval()
    assert count_macs(model, 128) < 100e6
    scripted = torch.jit.script(model)
    x = torch.randn(2, 4, 128, 128, requires_grad=True)
    scripted(x)[:, 1].sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="unknown architecture"):
        build_model("alexnet")


def test_deep_architectures_have_the_paper_layouts():
    """vgg16: 13 conv3×3 layers with BatchNorm (VGG16's D layout); resnet18: 8 basic blocks."""
    from napari_pcim.training.architectures import BasicBlock

    vgg16 = build_model("vgg16")
    convs = [m for m in vgg16.modules() if isinstance(m, torch.nn.Conv2d)]
    bns = [m for m in vgg16.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(convs) == 13 == len(bns) and all(c.kernel_size == (3, 3) for c in convs)
    assert sum(isinstance(m, torch.nn.MaxPool2d) for m in vgg16.modules()) == 4
    resnet18 = build_model("resnet18")
    assert sum(isinstance(m, BasicBlock) for m in resnet18.modules()) == 8


def test_vgg_max_pool_variant():
    model = build_model("vgg", global_pool="max").eval()
    x = torch.randn(1, 4, 64, 64, requires_grad=True)
    torch.jit.script(model)(x)[0, 1].backward()
    # a max pool routes the gradient through one position per feature map
    assert x.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="global_pool"):
        build_model("resnet", global_pool="max")


def test_cli_train_and_evaluate(tmp_path, capsys):
    from napari_pcim.cli.main import main

    out = tmp_path / "cli.pt"
    argv = ["train", "--phenotype", "worms", "--out", str(out), "--n-train", "32", "--epochs", "1",
            "--device", "cpu", "--seed", "1"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out.strip().splitlines()[-1])["phenotype"] == "worms"
    assert "train worms/vgg" in captured.err and "1/1" in captured.err  # the console progress bar
    assert load_classifier(out).meta.extra["phenotype"] == "worms"
    assert main(["train", "--evaluate", "--phenotype", "worms", "--out", str(out), "--n-train", "4"]) == 0
    rows = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert [r["size"] for r in rows] == [128, 256] and all(0 <= r["accuracy"] <= 1 for r in rows)


def test_evaluation_refuses_training_seeds(tmp_path):
    tiny_run(tmp_path / "m.pt", seed=5)
    for seed in (5, 5 + VAL_SEED_OFFSET):
        with pytest.raises(ValueError, match="used to train"):
            evaluate_classifier(tmp_path / "m.pt", n=4, size=64, seed=seed)


# ----------------------------------------------------------------------------- bundled models


def test_bundled_models_contract():
    models = bundled_models()
    missing = [name for name in BUNDLED if name not in models]
    assert not missing, f"bundled models missing: {missing}"
    for name in BUNDLED:
        path = models[name]
        assert path.stat().st_size < 2 * 1024 * 1024, f"{path} is not under 2 MB"
        extra = {"napari_pcim.json": ""}
        module = torch.jit.load(str(path), _extra_files=extra)
        meta = json.loads(extra["napari_pcim.json"])
        assert meta["channels"] == ["DAPI", "Actin", "GFP", "Brightfield"]
        assert meta["classes"] == ["control", "treated"]
        assert meta["input_size"] == [128, 128] and meta["field_mode"] == "tile"
        assert meta["tile_overlap"] == 32
        assert meta["phenotype"] == name.split("_")[0] and meta["arch"] == name.split("_")[1]
        assert zipfile.is_zipfile(path)
        with torch.no_grad():
            assert tuple(module(torch.zeros(1, 4, 128, 128)).shape) == (1, 2)


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_model_accuracy_sanity(name):
    path = bundled_models()[name]
    result = evaluate_classifier(path, n=40, size=128, seed=EVAL_SEED + 7)
    assert result["accuracy"] > 0.9, result


def test_training_from_a_plate(tmp_path):
    from napari_pcim.plate_io import open_plate
    from napari_pcim.synth import make_plate
    from napari_pcim.training.data import load_training_data

    plate_path = make_plate(tmp_path / "p.zarr", fields=1, size=64, phenotype="foci", seed=2)
    images, labels, channels = load_training_data(plate=plate_path, n=24, size=48, seed=0,
                                                  return_channels=True)
    assert images.shape == (24, 4, 48, 48) and images.dtype == np.uint16
    assert labels.sum() == 12  # balanced over control / treated
    assert channels == list(open_plate(plate_path).channel_names)
    # every crop comes from a field of a well of its own class
    plate = open_plate(plate_path)
    by_class = {c: [plate.read_field(w, 0) for w, p in plate.phenotypes.items() if p == c]
                for c in ("control", "treated")}
    for crop, label in zip(images[:6], labels[:6]):
        fields = by_class[("control", "treated")[label]]
        assert any(
            (f[:, y : y + 48, x : x + 48] == crop).all()
            for f in fields for y in range(17) for x in range(17)
        )
    metrics = train_classifier("foci", "vgg", tmp_path / "p.pt", plate=plate_path, n_train=32,
                               epochs=1, size=48, n_val=8, device="cpu", progress=lambda d, t: None)
    meta = load_classifier(metrics["path"]).meta
    assert meta.extra["training"]["source"] == str(plate_path)
    assert meta.channels == channels


@pytest.mark.parametrize("setting", [{"epochs": 0}, {"epochs": -1}, {"n_train": 0}, {"lr": float("inf")}])
def test_train_classifier_refuses_counts_below_one_and_bad_rates(tmp_path, setting):
    with pytest.raises(ValueError, match=next(iter(setting))):
        train_classifier("foci", "vgg", tmp_path / "m.pt", **setting)
    assert not (tmp_path / "m.pt").exists()


@pytest.mark.parametrize("setting", [{"epochs_stage1": 0}, {"n_train": 0}, {"lr": float("nan")}])
def test_pixelcam_training_refuses_counts_below_one_and_bad_rates(tmp_path, setting):
    from napari_pcim.training.pixelcam_training import PixelCAMConfig, train_and_export_pixelcam

    with pytest.raises(ValueError, match=next(iter(setting))):
        train_and_export_pixelcam(tmp_path / "m.pt", PixelCAMConfig(**setting))
    assert not (tmp_path / "m.pt").exists()
