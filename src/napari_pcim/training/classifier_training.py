"""Train, export and evaluate the demo classifiers (behind ``napari-pcim train``).

Training data come either from a plate (random crops of its fields, labelled by the
plate map's ``phenotype`` column) or, without a plate, from
:func:`napari_pcim.synth.generate_batch` (see :mod:`napari_pcim.training.data`).
Per-channel normalisation is computed from the training set; training is
reproducible from ``seed`` (numpy and torch are seeded, data generation is
deterministic). The trained model is exported as TorchScript with its metadata by
:func:`napari_pcim.classifier.save_classifier` (an atomic write).

Seeds: synthetic training fields use ``generate_batch(seed=seed)``, the validation
fields ``seed + VAL_SEED_OFFSET`` and :func:`evaluate_classifier` ``EVAL_SEED + seed``,
so the three sets never share a field.

Entry points: :func:`train_classifier`, :func:`evaluate_classifier`,
:func:`default_schedule`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from napari_pcim.classifier import load_classifier, save_classifier
from napari_pcim.classifier_meta import RECOMMENDED_KEY
from napari_pcim.devices import resolve_device
from napari_pcim.training.architectures import build_model
from napari_pcim.training.data import DEFAULT_N_TRAIN, load_training_data
from napari_pcim.vocabulary import DEMO_CLASSES

VAL_SEED_OFFSET = 500_009
EVAL_SEED = 1_000_003
# Defaults that trained the bundled models (a few minutes each on 2 CPU cores):
# {phenotype: (generated training fields, epochs)}. Worms need more optimiser steps
# (straight vs curved is a shape cue, not an intensity one).
DEFAULTS = {"foci": (DEFAULT_N_TRAIN, 4), "translocation": (1000, 4), "worms": (1200, 10)}
DEFAULT_EPOCHS = DEFAULTS["foci"][1]
# Global pool of the VGG head per phenotype (see architectures.build_model); "avg" otherwise.
VGG_POOL = {"worms": "max"}
# Explainer options recorded in a bundled model's metadata, by model name
# (napari_pcim.explainers.recommended), all chosen on tuning fields (docs/benchmarks.md):
# - RISE: brightfield worms want large kept areas
#   (`napari-pcim bench tune rise stopping --models worms_vgg --set grid=8 --set p=0.5`):
#   43 % of 4000 masks, all rank metrics within the 4000-mask CI.
# - PCIM: each model's own choice of random starts, their noise and scale, and the map's σ
#   (`napari-pcim bench tune pcim --grid --fields 16`), written out in full so that a later
#   change of the PCIMOptions defaults does not change a model's maps: the shallow foci
#   nets reach their best with fewer starts and less σ than the deeper ones.
def _pcim(starts: int, noise: float, scale: float, smooth: float) -> dict[str, Any]:
    return {"starts": starts, "start_noise": noise, "start_scale": scale, "smooth": smooth}


RECOMMENDED: dict[str, dict[str, dict[str, Any]]] = {
    "foci_pixelcam": {"pcim": _pcim(32, 0.5, 0.0, 0.0)},
    "foci_resnet": {"pcim": _pcim(32, 0.5, 4.0, 0.5)},
    "foci_resnet18": {"pcim": _pcim(64, 0.5, 2.0, 1.0)},
    "foci_vgg": {"pcim": _pcim(32, 0.5, 2.0, 0.0)},
    "foci_vgg16": {"pcim": _pcim(64, 0.5, 2.0, 0.5)},
    "translocation_vgg": {"pcim": _pcim(16, 0.5, 2.0, 1.0)},
    "worms_vgg": {"rise": {"grid": 8, "p": 0.5, "tolerance": 0.1},
                  "pcim": _pcim(64, 0.75, 2.0, 2.0)},
}
N_VAL = 200

Progress = Callable[[int, int], None]


def default_schedule(phenotype: str) -> tuple[int, int]:
    """(generated training fields, epochs) that trained the bundled model of ``phenotype``."""
    return DEFAULTS.get(phenotype, DEFAULTS["foci"])


def _augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Per-sample random rot90 and horizontal flip of a square (B, C, s, s) batch."""
    rot = torch.randint(4, (len(x),), generator=generator)
    flip = torch.randint(2, (len(x),), generator=generator).bool()
    out = x.clone()
    for k in range(1, 4):
        sel = rot == k
        if sel.any():
            out[sel] = torch.rot90(x[sel], k, dims=(2, 3))
    out[flip] = torch.flip(out[flip], dims=(3,))
    return out


def _normalise(raw: np.ndarray, mean: torch.Tensor, std: torch.Tensor, device: torch.device) -> torch.Tensor:
    x = torch.from_numpy(raw.astype(np.float32)).to(device)
    return (x - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)


def _accuracy(model: torch.nn.Module, images: np.ndarray, labels: np.ndarray, mean: torch.Tensor,
              std: torch.Tensor, device: torch.device, batch_size: int = 64) -> float:
    model.eval()
    correct = 0
    with torch.inference_mode():
        for i in range(0, len(images), batch_size):
            logits = model(_normalise(images[i : i + batch_size], mean, std, device))
            correct += int((logits.argmax(1).cpu().numpy() == labels[i : i + batch_size]).sum())
    return correct / len(images)


# --------------------------------------------------------------------------- training


def train_classifier(
    phenotype: str,
    arch: str,
    out: str | Path,
    *,
    plate: str | Path | None = None,
    seed: int = 0,
    n_train: int = DEFAULT_N_TRAIN,
    epochs: int = DEFAULT_EPOCHS,
    size: int = 128,
    progress: Progress | None = None,
    device: str = "auto",
    batch_size: int = 32,
    lr: float = 2e-3,
    n_val: int | None = None,
    global_pool: str | None = None,
) -> dict[str, Any]:
    """Train ``arch`` ("vgg"|"resnet") on ``phenotype`` and export TorchScript to ``out``.

    Returns metrics: ``val_accuracy`` (held-out fields: generated with a different
    seed, or other crops of the plate), ``train_accuracy``, ``seconds``, ``path``,
    ``size_bytes`` and the settings. ``progress(done, total)`` counts optimiser
    steps. ``global_pool`` ("avg"|"max", VGG only) defaults to :data:`VGG_POOL` for
    the phenotype.
    """
    for name, value in (("n_train", n_train), ("epochs", epochs), ("batch_size", batch_size), ("size", size)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name}={value!r}: expected an integer >= 1")
    if not (np.isfinite(lr) and lr > 0):
        raise ValueError(f"lr={lr!r}: expected a finite number > 0")
    t0 = time.perf_counter()
    dev = resolve_device(device)
    n_val = n_val or min(N_VAL, max(16, n_train // 5))
    torch.manual_seed(seed)
    np.random.seed(seed)
    images, labels, channels = load_training_data(
        phenotype, plate, n_train, size, seed, return_channels=True
    )
    val_images, val_labels = load_training_data(phenotype, plate, n_val, size, seed + VAL_SEED_OFFSET)

    # normalisation statistics of the training set, per channel, in float64
    flat = images.reshape(len(images), images.shape[1], -1)
    mean_np = flat.mean(axis=(0, 2), dtype=np.float64)
    std_np = np.sqrt(((flat.astype(np.float64) - mean_np[None, :, None]) ** 2).mean(axis=(0, 2)))
    std_np = np.maximum(std_np, 1e-3)
    mean = torch.tensor(mean_np, dtype=torch.float32, device=dev)
    std = torch.tensor(std_np, dtype=torch.float32, device=dev)

    if global_pool is None:
        global_pool = VGG_POOL.get(phenotype, "avg") if arch == "vgg" else "avg"
    model = build_model(arch, len(channels), len(DEMO_CLASSES), global_pool=global_pool).to(dev)
    steps_per_epoch = -(-n_train // batch_size)
    total = epochs * steps_per_epoch
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=lr, total_steps=max(total, 1))
    generator = torch.Generator().manual_seed(seed)
    y_all = torch.from_numpy(labels)

    step = 0
    losses: list[float] = []
    for _ in range(epochs):
        model.train()
        order = torch.randperm(n_train, generator=generator)
        for start in range(0, n_train, batch_size):
            idx = order[start : start + batch_size].numpy()
            x = _augment(_normalise(images[idx], mean, std, torch.device("cpu")), generator).to(dev)
            loss = F.cross_entropy(model(x), y_all[idx].to(dev))
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            losses.append(loss.item())
            step += 1
            if progress is not None:
                progress(step, total)

    model.eval()
    val_acc = _accuracy(model, val_images, val_labels, mean, std, dev)
    train_acc = _accuracy(model, images[:n_val], labels[:n_val], mean, std, dev)
    meta = {
        "channels": channels,
        "input_size": [size, size],
        "normalization": {"mean": mean_np.tolist(), "std": std_np.tolist()},
        "classes": list(DEMO_CLASSES),
        "field_mode": "tile",
        "tile_overlap": size // 4,
        "has_localize": False,
        "arch": arch,
        "description": (
            f"napari-pcim demo {arch} classifier for the {phenotype!r} phenotype, trained on "
            + (f"crops of plate {Path(plate).name}" if plate else "synthetic fields")
        ),
        "phenotype": phenotype,
        "training": {
            "source": str(plate) if plate else "napari_pcim.synth.generate_batch",
            "seed": seed,
            "n_train": n_train,
            "epochs": epochs,
            "size": size,
            "batch_size": batch_size,
            "lr": lr,
            "n_val": n_val,
            "global_pool": global_pool,
            "torch": torch.__version__,
        },
        "val_accuracy": val_acc,
    }
    if f"{phenotype}_{arch}" in RECOMMENDED:
        meta[RECOMMENDED_KEY] = RECOMMENDED[f"{phenotype}_{arch}"]
    path = save_classifier(model.cpu(), meta, out)
    return {
        "path": str(path),
        "phenotype": phenotype,
        "arch": arch,
        "seed": seed,
        "n_train": n_train,
        "epochs": epochs,
        "size": size,
        "n_val": n_val,
        "train_accuracy": train_acc,
        "val_accuracy": val_acc,
        "final_loss": float(np.mean(losses[-20:])) if losses else float("nan"),
        "seconds": time.perf_counter() - t0,
        "size_bytes": path.stat().st_size,
    }


# --------------------------------------------------------------------------- evaluation


def evaluate_classifier(
    path: str | Path,
    phenotype: str | None = None,
    *,
    n: int = 200,
    size: int = 256,
    seed: int = EVAL_SEED,
    device: str = "cpu",
    batch_size: int = 16,
) -> dict[str, Any]:
    """Accuracy of a classifier file on ``n`` newly generated fields of ``size`` px.

    Fields larger than the model's input go through ``field_logits`` (tile mean for
    the demo models). ``phenotype`` defaults to the one in the model's metadata.
    """
    from napari_pcim.synth import generate_batch

    clf = load_classifier(path, device=device)
    phenotype = phenotype or clf.meta.extra.get("phenotype")
    if phenotype is None:
        raise ValueError(f"{path}: metadata names no phenotype; pass phenotype=")
    training_seed = clf.meta.extra.get("training", {}).get("seed")
    if training_seed is not None and seed in (training_seed, training_seed + VAL_SEED_OFFSET):
        raise ValueError(f"evaluation seed {seed} was used to train or validate {path}; pick another")
    batch = generate_batch(phenotype, n, size=size, seed=seed)
    names = list(batch.channel_names)
    proba = clf.predict_proba(batch.images, plate_channels=names, batch_size=batch_size)
    predicted = proba.argmax(axis=1)
    return {
        "path": str(path),
        "phenotype": phenotype,
        "n": n,
        "size": size,
        "seed": seed,
        "accuracy": float((predicted == batch.labels).mean()),
        "mean_p_true": float(proba[np.arange(n), batch.labels].mean()),
    }
