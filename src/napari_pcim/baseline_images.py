"""Baselines: what replaces "removed" pixels, shared by explainers and fidelity metrics.

All functions work on normalised tensors shaped (B, C, H, W) and return a tensor of
the same shape, dtype and device. One definition serves PCIM, RISE and the
deletion/insertion metrics, so a method and the metric that scores it agree on
what "removing" a pixel means.
"""

from __future__ import annotations

import math
from dataclasses import field
from typing import TYPE_CHECKING, Any, Literal, get_args

if TYPE_CHECKING:
    import torch

#: What "removed" pixels become; option annotations use the alias, messages the tuple.
Baseline = Literal["median", "zero", "mean", "blur"]
BASELINES: tuple[str, ...] = get_args(Baseline)
#: Kinds :func:`make_baseline` builds: the methods' choices plus ``background`` (objects
#: inpainted from their surroundings), the benchmark's fidelity baseline.
KINDS: tuple[str, ...] = (*BASELINES, "background")


def baseline_field(help: str = "what removed pixels become") -> Any:
    """The ``baseline`` option of a method's options dataclass (a :data:`Baseline`, default median)."""
    return field(default="median", metadata={"help": f"{help}: {', '.join(BASELINES)}", "main": True})


def blur_sigma_field() -> Any:
    """The ``blur_sigma`` option: the blur baseline's σ in pixels (None: 1/8 of the side)."""
    return field(default=None, metadata={
        "help": "blur baseline σ in pixels (default: 1/8 of the side)", "min": 0, "min_open": True})


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of a (B, C, H, W) tensor with reflect padding."""
    import torch
    import torch.nn.functional as F

    if sigma <= 0:
        return x
    h, w = x.shape[-2:]
    radius = int(min(math.ceil(3 * sigma), max(h, w) - 1))
    coords = torch.arange(-radius, radius + 1, device=x.device, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (coords / sigma) ** 2)
    kernel = (kernel / kernel.sum()).to(x.dtype)
    b, c = x.shape[:2]
    y = x.reshape(b * c, 1, h, w)
    # Reflect padding needs pad < dim; fall back to replicate on tiny images.
    mode = "reflect" if radius < min(h, w) else "replicate"
    y = F.pad(y, (radius, radius, 0, 0), mode=mode)
    y = F.conv2d(y, kernel.view(1, 1, 1, -1))
    y = F.pad(y, (0, 0, radius, radius), mode=mode)
    y = F.conv2d(y, kernel.view(1, 1, -1, 1))
    return y.reshape(b, c, h, w)


def make_baseline(
    x: torch.Tensor,
    kind: str = "median",
    *,
    raw_zero: torch.Tensor | None = None,
    blur_sigma: float | None = None,
) -> torch.Tensor:
    """Return the baseline image for ``x`` (B, C, H, W), normalised units.

    - ``median``: each channel's median over the field (the background level of a
      sparse fluorescence field), constant over pixels.
    - ``mean``: each channel's mean over the field.
    - ``zero``: zero raw intensity; ``raw_zero`` (C,) gives it in normalised units
      (``-mean/std``). Without it, 0 in normalised units.
    - ``blur``: a Gaussian blur with ``blur_sigma`` pixels (default: 1/8 of the
      shorter side), strong enough to erase foci and nuclear texture.
    - ``background``: the field with its objects removed and inpainted from the
      surrounding background (:func:`background_estimate`); for brightfield worms,
      whose phenotype (shape) a blur or a constant does not remove.
    """
    import torch

    if x.ndim != 4:
        raise ValueError(f"baseline expects a (B, C, H, W) tensor, got shape {tuple(x.shape)}")
    if kind == "median":
        flat = x.flatten(2)
        return flat.median(dim=2).values[..., None, None].expand_as(x).clone()
    if kind == "mean":
        return x.mean(dim=(2, 3), keepdim=True).expand_as(x).clone()
    if kind == "zero":
        if raw_zero is None:
            return torch.zeros_like(x)
        rz = torch.as_tensor(raw_zero, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
        return rz.expand_as(x).clone()
    if kind == "blur":
        sigma = blur_sigma if blur_sigma is not None else min(x.shape[-2:]) / 8.0
        return gaussian_blur(x, float(sigma))
    if kind == "background":
        return background_estimate(x, blur_sigma)
    raise ValueError(f"unknown baseline {kind!r}; expected one of {', '.join(KINDS)}")


def background_estimate(x: torch.Tensor, sigma: float | None = None, k: float = 3.0,
                        grow: int = 2) -> torch.Tensor:
    """A smooth background image of ``x`` (B, C, H, W) with its objects inpainted.

    Object pixels are those where any channel lies more than ``k`` robust standard
    deviations (1.4826 · MAD) from its field median, grown by ``grow`` pixels. The
    background is the normalised convolution of the remaining pixels
    (``blur(x · keep) / blur(keep)``, Gaussian σ = ``sigma``, default 1/16 of the shorter
    side), which fills object pixels from their surroundings; where a blur sees no
    background at all, σ doubles, and the field median fills what is still empty.

    Hand-written (not scikit-image's biharmonic inpainting): it runs on torch tensors on
    the explainer's device, batched, in milliseconds per field.
    """
    import torch
    import torch.nn.functional as F

    flat = x.flatten(2)
    med = flat.median(dim=2).values[..., None, None]
    mad = (x - med).abs().flatten(2).median(dim=2).values[..., None, None] * 1.4826
    obj = ((x - med).abs() > k * mad.clamp(min=1e-6)).any(dim=1, keepdim=True).to(x.dtype)
    if grow > 0:
        obj = F.max_pool2d(obj, 2 * grow + 1, stride=1, padding=grow)
    keep = 1.0 - obj
    s = float(sigma) if sigma is not None else min(x.shape[-2:]) / 16.0
    out = med.expand_as(x).clone()
    filled = torch.zeros_like(keep, dtype=torch.bool)
    for _ in range(4):
        weight = gaussian_blur(keep, s)
        ok = (weight > 0.05) & ~filled
        value = gaussian_blur(x * keep, s) / weight.clamp(min=1e-6)
        out = torch.where(ok.expand_as(x), value, out)
        filled |= ok
        if bool(filled.all()):
            break
        s *= 2.0
    return out
