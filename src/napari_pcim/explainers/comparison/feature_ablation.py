"""Feature ablation: the drop in f_t when each region of a label image becomes the baseline.

Regions are the plate's nuclei, cells or worms (``regions=``, label 0 is the
background region); without them ``explain()`` ablates SLIC superpixels.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from napari_pcim.baseline_images import Baseline
from napari_pcim.explainers.captum_methods import (
    CaptumCall,
    captum_attr,
    region_mask,
    register_captum,
)
from napari_pcim.baseline_images import baseline_field, blur_sigma_field
from napari_pcim.explainers.comparison._fields import per_eval_field
from napari_pcim.explainers.regions import regions_batch


@dataclass
class FeatureAblationOptions:
    """Feature ablation's options (see :mod:`napari_pcim.explainers.options`)."""

    baseline: Baseline = baseline_field()
    blur_sigma: float | None = blur_sigma_field()
    perturbations_per_eval: int = per_eval_field()
    regions: Any = field(default=None, metadata={
        "help": "label image(s) (Y, X) or (N, Y, X) of the ablated regions (default: SLIC)",
        "gui": False})
    n_segments: int = field(default=200, metadata={
        "help": "SLIC superpixels when no regions are given (approximate number)", "min": 2})


def _feature_ablation(call: CaptumCall, opts: FeatureAblationOptions) -> torch.Tensor:
    return captum_attr().FeatureAblation(call.f).attribute(
        call.x, baselines=call.baselines, target=call.target,
        feature_mask=region_mask(call.regions, call.x),
        perturbations_per_eval=opts.perturbations_per_eval,
    )


def _check(opts: FeatureAblationOptions, _classifier: Any, shape: tuple[int, int, int]) -> None:
    if opts.regions is not None:
        regions_batch(opts.regions, shape[0], shape[1:])


register_captum("feature_ablation", "Feature ablation", FeatureAblationOptions, _feature_ablation,
                whole_pixel=True, check=_check)
