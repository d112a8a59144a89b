"""Input × Gradient: x · ∂f_t/∂x, summed over a pixel's channels (signed)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from napari_pcim.explainers.captum_methods import CaptumCall, captum_attr, register_captum


@dataclass
class InputXGradientOptions:
    """Input × Gradient has no options."""


def _input_x_gradient(call: CaptumCall, _opts: InputXGradientOptions) -> torch.Tensor:
    return captum_attr().InputXGradient(call.f).attribute(call.x, target=call.target)


register_captum("input_x_gradient", "Input×Gradient", InputXGradientOptions, _input_x_gradient)
