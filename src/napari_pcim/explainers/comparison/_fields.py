"""Option fields the captum perturbation methods share (the baseline fields live in
:mod:`napari_pcim.baseline_images`)."""

from __future__ import annotations

from dataclasses import field
from typing import Any


def per_eval_field() -> Any:
    """``perturbations_per_eval``: perturbed images per forward pass."""
    return field(default=16, metadata={"help": "perturbed images per forward pass", "min": 1})
