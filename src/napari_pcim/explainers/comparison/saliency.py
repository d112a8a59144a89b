"""Saliency (Simonyan et al. 2014): |∂f_t/∂x|, summed over a pixel's channels."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from napari_pcim.explainers.captum_methods import CaptumCall, captum_attr, register_captum


@dataclass
class SaliencyOptions:
    """Saliency has no options."""


def _saliency(call: CaptumCall, _opts: SaliencyOptions) -> torch.Tensor:
    return captum_attr().Saliency(call.f).attribute(call.x, target=call.target, abs=True)


register_captum("saliency", "Saliency", SaliencyOptions, _saliency)
