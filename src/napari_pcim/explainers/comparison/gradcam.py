"""Grad-CAM (Selvaraju et al. 2017) on the last ``Conv2d``; plain ``nn.Module`` classifiers only."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from napari_pcim.explainers.captum_methods import (
    BaselineError,
    CaptumCall,
    captum_attr,
    captum_missing,
    gradcam_layer,
    register_captum,
)


@dataclass
class GradCAMOptions:
    """Grad-CAM has no options."""


def _gradcam(call: CaptumCall, _opts: GradCAMOptions) -> torch.Tensor:
    ca = captum_attr()
    layer = gradcam_layer(call.model)
    cam = ca.LayerGradCam(call.f, layer).attribute(call.x, target=call.target, relu_attributions=True)
    return ca.LayerAttribution.interpolate(cam, tuple(call.x.shape[-2:]), interpolate_mode="bilinear")


def _unavailable(classifier: Any) -> str:
    """captum missing, or a classifier without a hookable Conv2d (every TorchScript file)."""
    missing = captum_missing(classifier)
    if missing:
        return missing
    try:
        gradcam_layer(classifier.module)
    except BaselineError as exc:
        return str(exc)
    return ""


register_captum("gradcam", "Grad-CAM", GradCAMOptions, _gradcam, whole_pixel=True,
                unavailable=_unavailable)
