"""Per-channel attribution: which fluorescence channel carries a field's evidence.

Two kinds, chosen by each method's registry entry (``Explainer.channels``):

- **decomposition** (PCIM with ``isolation="pixel-channel"``, saliency,
  Input×Gradient, Integrated Gradients): the method gives one map per channel and
  the pixel map is their sum. A channel's importance is its share of the positive
  attribution, ``Σ_pixels max(map_c, 0) / Σ_c Σ_pixels max(map_c, 0)``
  (:func:`positive_shares`).
- **channel ablation** (every other method, :func:`channel_ablation`): channel c
  of the whole field is replaced by the method's baseline (the median for a method
  without one) and the drop of the target's probability is measured. The
  importance is the positive drops normalised to sum 1, and the channel maps are
  the pixel map times each channel's share: they apportion the map, they do not
  decompose it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from napari_pcim.baseline_images import make_baseline
from napari_pcim.explainers.runtime import check_stop


def normalise_rows(values: np.ndarray) -> np.ndarray:
    """Positive parts of ``values`` (..., C) divided by their sum per row; all zeros where none."""
    pos = np.clip(np.asarray(values, dtype=np.float64), 0, None)
    total = pos.sum(axis=-1, keepdims=True)
    out = np.divide(pos, total, out=np.zeros_like(pos), where=total > 0)
    return out.astype(np.float32)


def positive_shares(channel_maps: np.ndarray) -> np.ndarray:
    """Channel importance (N, T, C) of decomposed channel maps (N, T, C, Y, X)."""
    return normalise_rows(np.clip(channel_maps, 0, None).sum(axis=(-2, -1)))


def channel_ablation(job: Any, opts: Any, probs: np.ndarray, targets: np.ndarray,
                     batch_size: int, names: list[str]) -> np.ndarray:
    """Channel importance (N, T, C) by ablating each channel of each whole field.

    ``probs`` (N, K): the unperturbed fields' probabilities; ``targets`` (N, T) the
    explained classes; ``names`` the fields' names for messages. The model sees each field with one channel replaced by the
    baseline of ``opts`` (``baseline``/``blur_sigma``; median when it has none).
    """
    fields = job.fields
    n_fields, n_channels = fields.shape[:2]
    clf = job.classifier
    base = make_baseline(
        fields, getattr(opts, "baseline", "median"), raw_zero=clf.raw_zero(fields.device),
        blur_sigma=getattr(opts, "blur_sigma", None),
    )
    drops = np.zeros((*targets.shape, n_channels), dtype=np.float64)
    eye = torch.eye(n_channels, device=fields.device, dtype=fields.dtype)[:, :, None, None]
    with torch.inference_mode():
        for n in range(n_fields):
            check_stop(job.should_stop, "channel ablation")
            x, b = fields[n : n + 1], base[n : n + 1]
            ablated = x * (1 - eye) + b * eye  # (C, C, Y, X): copy c has channel c removed
            logits = torch.cat([clf.field_logits(ablated[c : c + 1], batch_size)
                                for c in range(n_channels)])
            rows = [f"{names[n]} with channel {ch!r} ablated" for ch in clf.meta.channels]
            clf.check_logits(logits, rows, "channel ablation")
            p = torch.softmax(logits.float(), dim=1).cpu().numpy()  # (C, K)
            job.stats["forward_passes"] = job.stats.get("forward_passes", 0) + n_channels * job.plan.n_tiles
            drops[n] = probs[n, targets[n]][:, None] - p[:, targets[n]].T
    return normalise_rows(drops)


def apportion(maps: np.ndarray, importance: np.ndarray) -> np.ndarray:
    """Channel maps (N, T, C, Y, X): each pixel map (N, T, Y, X) times each channel's share."""
    return (maps[:, :, None] * importance[..., None, None]).astype(np.float32)
