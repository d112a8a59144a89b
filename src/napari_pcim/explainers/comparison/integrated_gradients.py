"""Integrated Gradients (Sundararajan et al. 2017): the path integral from the baseline image."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from napari_pcim.baseline_images import Baseline
from napari_pcim.explainers.captum_methods import CaptumCall, captum_attr, register_captum
from napari_pcim.baseline_images import baseline_field, blur_sigma_field


@dataclass
class IntegratedGradientsOptions:
    """Integrated Gradients' options (see :mod:`napari_pcim.explainers.options`)."""

    baseline: Baseline = baseline_field()
    blur_sigma: float | None = blur_sigma_field()
    n_steps: int = field(default=32, metadata={
        "help": "steps of the path integral from the baseline", "min": 1, "main": True})
    internal_batch_size: int = field(default=16, metadata={
        "help": "path images per forward pass", "min": 1})


def _integrated_gradients(call: CaptumCall, opts: IntegratedGradientsOptions) -> torch.Tensor:
    return captum_attr().IntegratedGradients(call.f).attribute(
        call.x, baselines=call.baselines, target=call.target, n_steps=opts.n_steps,
        internal_batch_size=opts.internal_batch_size,
    )


register_captum("integrated_gradients", "Integrated Gradients", IntegratedGradientsOptions,
                _integrated_gradients)
