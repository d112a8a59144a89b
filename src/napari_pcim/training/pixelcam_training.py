"""PixelCAM: learn where the phenotype is from image-level labels only.

A multi-task network shares one convolutional encoder between

- an **image classifier** (global average pooling + linear → logits), and
- a **pixel classifier**: a small head of 1×1 convolutions on the encoder's features
  upsampled to pixel resolution, giving foreground/background logits per pixel.

Training (no ground-truth masks anywhere):

1. *Stage 1* trains encoder + image classifier with cross-entropy. Its class activation
   map (CAM: the classifier's weights applied to the last feature map) for the hit class
   is the localisation prior.
2. *Pseudo-labels* per treated image: a sampled subset of the most CAM-confident pixels is
   foreground, a sampled subset of the least confident is background, all other pixels are
   unlabeled (``IGNORE``). Control images carry no phenotype, so they give background
   samples only. New samples are drawn every epoch.
3. *Stage 2* trains both heads jointly: image cross-entropy + λ · partial cross-entropy of
   the pixel head on the pseudo-labelled pixels only.

The exported TorchScript module has ``forward`` (logits, the classifier contract) and an
exported ``localize`` method (foreground probability, (B, H, W) at input resolution); its
metadata says ``has_localize: true``. See docs/methods.md.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from napari_pcim.vocabulary import DEMO_CHANNELS, DEMO_CLASSES, HIT_CLASS

IGNORE = -1  # pixel pseudo-label: not labelled, ignored by the partial cross-entropy
HIT = DEMO_CLASSES.index(HIT_CLASS)  # label of the hit class in the image labels


class PixelCAMNet(nn.Module):
    """Shared encoder, image head (GAP + linear) and pixel head (1×1 convs on upsampled features).

    The pixel head sees a hypercolumn: the features of the first ``head_depth`` encoder
    stages, bilinearly upsampled to the input resolution and concatenated. Shallow stages
    describe the pixel itself (foci are 2–4 px across); deep stages mostly describe its
    neighbourhood, and a head fed with them only redraws the coarse CAM blob it was
    pseudo-labelled from. Its first 1×1
    convolution is applied to each stage at its own resolution before upsampling and
    summing: both operations are linear, so this equals the 1×1 convolution over the
    upsampled concatenation, at a fraction of the cost.
    """

    def __init__(self, in_channels: int = 4, n_classes: int = 2, widths: tuple[int, ...] = (16, 32, 64, 64),
                 head_width: int = 32, head_depth: int = 1):
        super().__init__()
        stages = []
        c_in = in_channels
        for i, width in enumerate(widths):
            stages.append(
                nn.Sequential(
                    nn.MaxPool2d(2) if i > 0 else nn.Identity(),
                    nn.Conv2d(c_in, width, 3, padding=1),
                    nn.ReLU(),
                )
            )
            c_in = width
        self.stages = nn.ModuleList(stages)
        self.fc = nn.Linear(widths[-1], n_classes)
        # First pixel-head layer, split by stage (one bias, on the full-resolution part).
        if not 1 <= head_depth <= len(widths):
            raise ValueError(f"head_depth must be in [1, {len(widths)}], got {head_depth}")
        self.pixel_proj = nn.ModuleList(
            [nn.Conv2d(w, head_width, 1, bias=(i == 0)) for i, w in enumerate(widths[:head_depth])]
        )
        self.pixel_out = nn.Conv2d(head_width, 2, 1)

    def _features(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats: list[torch.Tensor] = []
        h = x
        for stage in self.stages:
            h = stage(h)
            feats.append(h)
        return feats

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Image-level logits (B, K): the classifier contract."""
        last = self._features(x)[-1]
        return self.fc(last.mean(dim=(2, 3)))

    def both(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Image logits (B, K) and pixel logits (B, 2, H, W) from one encoder pass."""
        feats = self._features(x)
        logits = self.fc(feats[-1].mean(dim=(2, 3)))
        size = (x.shape[-2], x.shape[-1])
        hidden = torch.zeros(0)
        for i, proj in enumerate(self.pixel_proj):
            part = proj(feats[i])
            if i > 0:
                part = F.interpolate(part, size=size, mode="bilinear", align_corners=False)
            hidden = part if i == 0 else hidden + part
        return logits, self.pixel_out(torch.relu(hidden))

    @torch.jit.export
    def localize(self, x: torch.Tensor) -> torch.Tensor:
        """Foreground probability (B, H, W) in [0, 1] at input resolution."""
        _, pixel = self.both(x)
        return torch.softmax(pixel, dim=1)[:, 1]

    @torch.jit.export
    def cam(self, x: torch.Tensor, target: int) -> torch.Tensor:
        """Class activation map (B, H, W) of class ``target``, upsampled to the input size."""
        last = self._features(x)[-1]
        weights = self.fc.weight[target].view(1, -1, 1, 1)
        cam = (last * weights).sum(dim=1, keepdim=True)
        cam = F.interpolate(cam, size=(x.shape[-2], x.shape[-1]), mode="bilinear", align_corners=False)
        return cam[:, 0]


def partial_cross_entropy(pixel_logits: torch.Tensor, pseudo: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over the labelled pixels only (labels 0/1; ``IGNORE`` pixels do not count).

    ``pixel_logits`` (B, 2, H, W), ``pseudo`` (B, H, W) int64. Returns the mean over labelled
    pixels, or a zero that keeps the graph when no pixel is labelled.
    """
    if pseudo.dim() != 3 or pixel_logits.dim() != 4 or pixel_logits.shape[1] != 2:
        raise ValueError(
            f"expected pixel logits (B, 2, H, W) and labels (B, H, W); got {tuple(pixel_logits.shape)} "
            f"and {tuple(pseudo.shape)}"
        )
    if not bool((pseudo != IGNORE).any()):
        return pixel_logits.sum() * 0.0
    return F.cross_entropy(pixel_logits, pseudo, ignore_index=IGNORE)


def select_pseudo_labels(
    cam: torch.Tensor,
    *,
    fg_fraction: float = 0.02,
    bg_fraction: float = 0.3,
    fg_sample: float = 0.5,
    bg_sample: float = 0.05,
    has_foreground: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Pseudo-labels (B, H, W) int64 from localisation maps ``cam`` (B, H, W).

    Per image, the foreground pool is the ``fg_fraction`` most confident pixels and the
    background pool the ``bg_fraction`` least confident; ``fg_sample`` and ``bg_sample``
    of each pool (rounded, at least one pixel) are drawn at random without replacement.
    Images with ``has_foreground`` False get background samples only. Everything else is
    ``IGNORE``.
    """
    for name, value in (("fg_fraction", fg_fraction), ("bg_fraction", bg_fraction),
                        ("fg_sample", fg_sample), ("bg_sample", bg_sample)):
        if not 0.0 < value <= 1.0:
            raise ValueError(f"{name} must be in (0, 1], got {value}")
    if fg_fraction + bg_fraction > 1.0:
        raise ValueError(f"fg_fraction + bg_fraction must be ≤ 1, got {fg_fraction + bg_fraction}")
    b, h, w = cam.shape
    n = h * w
    n_fg_pool = max(1, round(fg_fraction * n))
    n_bg_pool = max(1, round(bg_fraction * n))
    n_fg = max(1, round(fg_sample * n_fg_pool))
    n_bg = max(1, round(bg_sample * n_bg_pool))
    labels = torch.full((b, n), IGNORE, dtype=torch.int64, device=cam.device)
    order = torch.argsort(cam.reshape(b, n), dim=1, descending=True)
    for i in range(b):
        bg_pool = order[i, n - n_bg_pool:]
        pick = torch.randperm(n_bg_pool, generator=generator)[:n_bg].to(cam.device)
        labels[i, bg_pool[pick]] = 0
        if has_foreground is None or bool(has_foreground[i]):
            fg_pool = order[i, :n_fg_pool]
            pick = torch.randperm(n_fg_pool, generator=generator)[:n_fg].to(cam.device)
            labels[i, fg_pool[pick]] = 1
    return labels.reshape(b, h, w)


@dataclass
class PixelCAMConfig:
    """Training settings; the defaults trained the bundled ``foci_pixelcam`` model."""

    phenotype: str = "foci"
    seed: int = 0
    n_train: int = 2000
    size: int = 128
    epochs_stage1: int = 5
    epochs_stage2: int = 4
    batch_size: int = 32
    lr: float = 2e-3
    pixel_weight: float = 1.0
    fg_fraction: float = 0.02
    bg_fraction: float = 0.3
    fg_sample: float = 0.5
    bg_sample: float = 0.05

    def validate(self) -> None:
        """``ValueError`` naming a setting that is not a positive count or a finite rate."""
        for name in ("n_train", "size", "epochs_stage1", "epochs_stage2", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"PixelCAM {name}={value!r}: expected an integer >= 1")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"PixelCAM lr={self.lr!r}: expected a finite number > 0")


def _epoch_batches(n: int, batch_size: int, generator: torch.Generator):
    perm = torch.randperm(n, generator=generator)
    for start in range(0, n, batch_size):
        yield perm[start:start + batch_size]


def _augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random flips and 90° rotations (labels are rotation invariant)."""
    k = int(torch.randint(4, (1,), generator=generator))
    x = torch.rot90(x, k, dims=(2, 3))
    if bool(torch.randint(2, (1,), generator=generator)):
        x = torch.flip(x, dims=(3,))
    return x


def train_pixelcam(
    images: np.ndarray,
    labels: np.ndarray,
    config: PixelCAMConfig,
    *,
    progress: Callable[[int, int], None] | None = None,
    device: str = "cpu",
) -> tuple[PixelCAMNet, dict[str, list[float]], tuple[list[float], list[float]]]:
    """Train a PixelCAMNet on raw fields (N, C, H, W) and image labels (N,) in {0, 1}.

    Returns the trained model (eval mode), the loss history and the normalisation
    (mean, std) per channel computed from ``images``.
    """
    torch.manual_seed(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    raw = torch.as_tensor(images.astype(np.float32))
    mean = raw.mean(dim=(0, 2, 3))
    std = raw.std(dim=(0, 2, 3)).clamp_min(1e-3)
    x_all = ((raw - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)).to(device)
    y_all = torch.as_tensor(labels, dtype=torch.int64).to(device)
    model = PixelCAMNet(in_channels=x_all.shape[1], n_classes=2).to(device)
    history: dict[str, list[float]] = {"stage1_ce": [], "stage2_ce": [], "stage2_pixel": []}
    n = len(x_all)
    total = config.epochs_stage1 + config.epochs_stage2
    epoch_no = 0

    def report() -> None:
        if progress is not None:
            progress(epoch_no, total)

    # Stage 1: image classification only; its CAM becomes the localisation prior.
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    for _ in range(config.epochs_stage1):
        model.train()
        losses = []
        for idx in _epoch_batches(n, config.batch_size, gen):
            loss = F.cross_entropy(model(_augment(x_all[idx], gen)), y_all[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss))
        history["stage1_ce"].append(float(np.mean(losses)))
        epoch_no += 1
        report()

    prior = copy.deepcopy(model).eval()
    with torch.inference_mode():
        cams = torch.cat([prior.cam(x_all[i:i + 64], HIT) for i in range(0, n, 64)])
    hits = y_all == HIT

    # Stage 2: both heads; fresh pseudo-label samples every epoch.
    opt = torch.optim.Adam(model.parameters(), lr=config.lr / 2)
    for _ in range(config.epochs_stage2):
        model.train()
        ce_l, px_l = [], []
        pseudo_all = select_pseudo_labels(
            cams, fg_fraction=config.fg_fraction, bg_fraction=config.bg_fraction,
            fg_sample=config.fg_sample, bg_sample=config.bg_sample,
            has_foreground=hits, generator=gen,
        )
        for idx in _epoch_batches(n, config.batch_size, gen):
            # Same rotation/flip for image and pseudo-labels: stack them as one extra channel.
            stacked = torch.cat([x_all[idx], pseudo_all[idx, None].float()], dim=1)
            stacked = _augment(stacked, gen)
            xb, pb = stacked[:, :-1], stacked[:, -1].round().long()
            logits, pixel = model.both(xb)
            ce = F.cross_entropy(logits, y_all[idx])
            px = partial_cross_entropy(pixel, pb)
            loss = ce + config.pixel_weight * px
            opt.zero_grad()
            loss.backward()
            opt.step()
            ce_l.append(float(ce))
            px_l.append(float(px))
        history["stage2_ce"].append(float(np.mean(ce_l)))
        history["stage2_pixel"].append(float(np.mean(px_l)))
        epoch_no += 1
        report()
    model.eval()
    return model.cpu(), history, (mean.tolist(), std.tolist())


def export_pixelcam(model: PixelCAMNet, path: str | Path, *, mean: list[float], std: list[float],
                    config: PixelCAMConfig, channels: list[str] | tuple[str, ...] = DEMO_CHANNELS,
                    extra: dict | None = None) -> Path:
    """Script ``model`` (forward + localize) and save it atomically with napari-pcim metadata."""
    from napari_pcim.classifier import save_classifier
    from napari_pcim.classifier_meta import RECOMMENDED_KEY
    from napari_pcim.training.classifier_training import RECOMMENDED

    recommended = RECOMMENDED.get(f"{config.phenotype}_pixelcam")
    meta = {
        "channels": list(channels),
        "input_size": [config.size, config.size],
        "normalization": {"mean": mean, "std": std},
        "classes": list(DEMO_CLASSES),
        "field_mode": "tile",
        "tile_overlap": config.size // 4,
        "has_localize": True,
        "arch": "pixelcam-vgg",
        "description": f"PixelCAM ({config.phenotype}): image classifier + pixel foreground head, "
        "trained from image-level labels only",
        "phenotype": config.phenotype,
        "training": asdict(config),
        **({RECOMMENDED_KEY: recommended} if recommended else {}),
        **(extra or {}),
    }
    return save_classifier(torch.jit.script(model.eval()), meta, path)


def evaluate_pixelcam(path: str | Path, *, reference: str | Path | None = None, n: int = 200,
                      size: int = 128, seed: int = 4242) -> list[dict]:
    """Both tasks on the training condition and a shifted one (cell size, intensity, background).

    Classification: accuracy of the PixelCAM model and of ``reference`` (a plain classifier,
    default the bundled ``foci_vgg``) on the same ``n`` fields. Localisation: PxAP and the
    best-threshold IoU/Dice of ``localize`` against the ground-truth masks of the treated fields.
    """
    from napari_pcim import metrics
    from napari_pcim.classifier import bundled_model_path, load_classifier
    from napari_pcim.synth import ImagingCondition, generate_batch

    model = load_classifier(path)
    if not model.meta.has_localize:
        raise ValueError(f"{path}: metadata says the model has no localize method")
    plain = load_classifier(reference or bundled_model_path("foci_vgg"))
    phenotype = model.meta.extra.get("phenotype", "foci")
    rows = []
    for name, condition in (("training", ImagingCondition()), ("shifted", ImagingCondition.shifted())):
        batch = generate_batch(phenotype, n, size=size, seed=seed, condition=condition)
        channels = list(batch.channel_names)
        acc = {}
        for label, clf in (("pixelcam", model), ("plain", plain)):
            proba = clf.predict_proba(batch.images, plate_channels=channels)
            acc[label] = float((proba.argmax(axis=1) == batch.labels).mean())
        hits = np.flatnonzero(batch.labels == HIT)
        scores: dict[str, list[float]] = {"pxap": [], "best_iou": [], "best_dice": []}
        for start in range(0, len(hits), 32):
            idx = hits[start:start + 32]
            with torch.inference_mode():
                fg = model.module.localize(model.prepare(batch.images[idx], plate_channels=channels)).numpy()
            for k, i in enumerate(idx):
                mask = batch.gt[i] > 0
                for metric in scores:
                    scores[metric].append(getattr(metrics, metric)(fg[k], mask))
        rows.append({
            "condition": name,
            "n": n,
            "accuracy_pixelcam": acc["pixelcam"],
            "accuracy_plain": acc["plain"],
            **{metric: float(np.nanmean(v)) for metric, v in scores.items()},
        })
    return rows


def train_and_export_pixelcam(
    out: str | Path,
    config: PixelCAMConfig,
    *,
    plate: str | Path | None = None,
    device: str = "auto",
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Load the training fields (from ``plate``, else generated), train, export to ``out``.

    ``progress(done, total)`` counts epochs of both stages. Returns ``path``,
    ``n_train``, ``size_bytes``, ``seconds`` and the loss ``history``.
    """
    from napari_pcim.devices import resolve_device
    from napari_pcim.training.data import load_training_data

    config.validate()
    t0 = time.perf_counter()
    images, labels, channels = load_training_data(
        phenotype=config.phenotype, plate=plate, n=config.n_train, size=config.size, seed=config.seed,
        return_channels=True,
    )
    model, history, (mean, std) = train_pixelcam(images, labels, config, progress=progress,
                                                 device=str(resolve_device(device)))
    path = export_pixelcam(model, out, mean=mean, std=std, config=config, channels=channels,
                           extra={"history": history})
    return {"path": str(path), "n_train": len(images), "size_bytes": path.stat().st_size,
            "seconds": time.perf_counter() - t0, "history": history}
