"""PCIM's random starts: the mixing logits each start begins from.

A start re-mixes the pixels of the image with a random log-normal contrast
``exp(w₀)`` (then renormalised by the softmax). :func:`start_logits` draws ``w₀``:
Gaussian, standard deviation ``start_noise`` per pixel, independent across pixels or,
with ``start_scale`` = s > 0, correlated over about s pixels (white noise blurred by a
Gaussian of σ = s and rescaled to the same per-pixel deviation), so that a start dims
or brightens whole structures of that size, not single pixels.

The draws come from a CPU generator seeded per item (from the run's seed and the
target) and per start, so a map depends on its field, target and seed only: not on
the other fields, the batching or the device.
"""

from __future__ import annotations

import math

import torch

from napari_pcim.baseline_images import gaussian_blur


def _blur_gain(scale: float) -> float:
    """Per-pixel standard deviation of unit white noise after :func:`gaussian_blur` with σ =
    ``scale``: the L2 norm of the blur's kernel, read from the blur of a single impulse."""
    radius = math.ceil(3 * scale)
    impulse = torch.zeros(1, 1, 2 * radius + 1, 2 * radius + 1)
    impulse[..., radius, radius] = 1.0
    return float(gaussian_blur(impulse, scale).norm())


def start_logits(seeds: list[int], start: int, noise: float, scale: float,
                 shape: tuple[int, int, int, int], device: torch.device | str = "cpu",
                 ) -> torch.Tensor:
    """Mixing logits (n, P) on ``device`` of start number ``start`` for n items seeded by ``seeds``.

    ``shape`` = (tiles per item, weights per pixel, H, W); P is their product. Each item
    draws P standard normals from ``torch.Generator().manual_seed(seed * 131 + start)``
    (on the CPU, so the draws do not depend on the device); with ``scale`` > 0 each
    (tile, weight) plane is then blurred on ``device`` by σ = ``scale`` and divided by
    the blur's gain, so every pixel keeps standard deviation ``noise``."""
    P = shape[0] * shape[1] * shape[2] * shape[3]
    z = torch.stack([torch.randn(P, generator=torch.Generator().manual_seed(seed * 131 + start))
                     for seed in seeds]).to(device)
    if scale > 0:
        planes = z.view(len(seeds) * shape[0], shape[1], shape[2], shape[3])
        z = (gaussian_blur(planes, scale) / _blur_gain(scale)).reshape(len(seeds), P)
    return z * noise
