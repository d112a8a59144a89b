"""PCIM's options: one dataclass, the one source of their defaults, types, ranges and help.

See :mod:`napari_pcim.explainers.pcim` for the method and
:mod:`napari_pcim.explainers.options` for the metadata keys.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, get_args

from napari_pcim.baseline_images import Baseline, baseline_field, blur_sigma_field

Mixing = Literal["linear", "saturating"]
Readout = Literal["mass-change", "mass-above-median", "mass", "mask"]
Loss = Literal["margin", "log-prob"]
Update = Literal["normalised", "adam"]
Isolation = Literal["pixel", "pixel-channel"]
MIXINGS: tuple[str, ...] = get_args(Mixing)
READOUTS: tuple[str, ...] = get_args(Readout)
ISOLATIONS: tuple[str, ...] = get_args(Isolation)
LOSSES: tuple[str, ...] = get_args(Loss)
UPDATES: tuple[str, ...] = get_args(Update)


@dataclass
class PCIMOptions:
    """PCIM's tunable options (see :mod:`napari_pcim.explainers.options` for the metadata keys)."""

    steps: int = field(default=1, metadata={
        "help": "maximum optimisation steps (1: one normalised step, the tuned default)", "min": 1,
        "main": True})
    lr: float = field(default=0.1, metadata={
        "help": "step size: the largest change of a mixing weight per step (normalised), "
                "or Adam's learning rate", "min": 0, "min_open": True})
    loss: Loss = field(default="margin", metadata={
        "help": "'margin': target log-odds z_t − logsumexp(z_others), never saturates; "
                "'log-prob': −log p(target), vanishes for confident classifiers"})
    update: Update = field(default="normalised", metadata={
        "help": "'normalised': w −= lr·g/max|g| (keeps the gradient's shape); 'adam': Adam"})
    budget: float = field(
        default=1.0,
        metadata={"help": "β: total mixing weight as a fraction of the image (0–1]; 1 = the image",
                  "min": 0, "min_open": True, "max": 1, "main": True},
    )
    mixing: Mixing = field(
        default="linear",
        metadata={"help": "'linear' (m = β·H·W·σ) or 'saturating' (m = 1 − exp(−β·H·W·σ))"},
    )
    temperature: float = field(
        default=1.0, metadata={"help": "τ: softmax temperature of the mixing weights", "min": 0,
                               "min_open": True}
    )
    tv: float = field(
        default=0.0, metadata={"help": "weight of the total-variation smoothness term on the mask",
                               "min": 0}
    )
    baseline: Baseline = baseline_field("what removed pixels become")
    blur_sigma: float | None = blur_sigma_field()
    patience: int = field(
        default=10, metadata={"help": "early stop: steps over which the loss must improve", "min": 1}
    )
    tol: float = field(
        default=0.01,
        metadata={"help": "early stop: minimal relative loss improvement over `patience` steps",
                  "min": 0},
    )
    readout: Readout = field(
        default="mass-change",
        metadata={"help": "map: 'mass-change' (H·W·σ − 1, the change from the image), "
                          "'mass-above-median' (H·W·σ − its median), 'mass' (H·W·σ) or 'mask' (m)"},
    )
    starts: int = field(default=64, metadata={
        "help": "random starts averaged: each re-mixes the pixels with random contrast "
                "(see start_noise) and takes the same steps", "min": 1, "main": True})
    start_noise: float = field(default=0.5, metadata={
        "help": "std of the random starts' mixing logits (log-normal contrast; 0: every start "
                "is the image itself)", "min": 0})
    start_scale: float = field(default=2.0, metadata={
        "help": "σ in pixels over which a random start's contrast varies smoothly (0: every "
                "pixel independently; about the size of the structures the model looks at)",
        "min": 0})
    smooth: float = field(default=0.5, metadata={
        "help": "σ in model-input pixels of a Gaussian that smooths the map (0: off); "
                "tuned on tuning fields, larger for deeper models", "min": 0, "main": True})
    batch_size: int | None = field(default=None, metadata={
        "help": "images (tile × target) optimised together per batch (empty: tuned for this "
                "model, device, threads and tile)",
        "min": 1})
    isolation: Isolation = field(
        default="pixel",
        metadata={"help": "mixing units: 'pixel' (all channels of a pixel share one weight) or "
                          "'pixel-channel' (one weight per pixel and channel: per-channel maps)"},
    )

    def starts_run(self) -> int:
        """Starts actually run: ``starts``, or 1 when ``start_noise`` is 0 (all would be the image)."""
        return self.starts if self.start_noise > 0 else 1
