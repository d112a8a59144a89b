"""Occlusion (Zeiler & Fergus 2014): the drop in f_t when a square window becomes the baseline."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from napari_pcim.baseline_images import Baseline
from napari_pcim.explainers.captum_methods import (
    BaselineError,
    CaptumCall,
    captum_attr,
    register_captum,
)
from napari_pcim.baseline_images import baseline_field, blur_sigma_field
from napari_pcim.explainers.comparison._fields import per_eval_field


@dataclass
class OcclusionOptions:
    """Occlusion's options (see :mod:`napari_pcim.explainers.options`)."""

    baseline: Baseline = baseline_field()
    blur_sigma: float | None = blur_sigma_field()
    window: int = field(default=16, metadata={
        "help": "side of the occluded square (pixels); at most the tile side", "min": 1,
        "main": True})
    stride: int = field(default=8, metadata={"help": "step between windows (pixels)", "min": 1})
    perturbations_per_eval: int = per_eval_field()


def _occlusion(call: CaptumCall, opts: OcclusionOptions) -> torch.Tensor:
    c, h, w = call.x.shape[1:]
    if opts.window > min(h, w):
        raise BaselineError(f"occlusion: need 0 < window <= {min(h, w)} and stride > 0")
    return captum_attr().Occlusion(call.f).attribute(
        call.x, sliding_window_shapes=(c, opts.window, opts.window),
        strides=(c, opts.stride, opts.stride), baselines=call.baselines, target=call.target,
        perturbations_per_eval=opts.perturbations_per_eval,
    )


def _check(opts: OcclusionOptions, classifier: Any, _shape: tuple[int, int, int]) -> None:
    side = min(classifier.meta.input_size)
    if opts.window > side:
        raise ValueError(f"occlusion option window={opts.window} is larger than the tile side {side}")


register_captum("occlusion", "Occlusion", OcclusionOptions, _occlusion, whole_pixel=True,
                check=_check)
