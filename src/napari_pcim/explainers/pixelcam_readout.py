"""PixelCAM read-out: the foreground probability of a model's own pixel head.

A PixelCAM classifier (see :mod:`napari_pcim.training.pixelcam_training`) carries a ``localize`` method
that maps normalised tiles (B, C, h, w) to foreground probabilities (B, h, w). The map
localises the phenotype ("foreground"), whatever the target class, so every target of
a field gets the same map. Only classifiers whose metadata says ``has_localize`` qualify.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch


@dataclass
class PixelCAMOptions:
    """PixelCAM's options; ``metadata["help"]`` is the one-line help the GUI shows."""

    batch_size: int = field(default=16, metadata={"help": "tiles per forward pass of the pixel head"})

    def validate(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"PixelCAM option batch_size={self.batch_size!r} must be ≥ 1")


def check_localize(classifier) -> None:
    """Raise ValueError unless ``classifier`` has a PixelCAM ``localize`` head."""
    if not classifier.meta.has_localize or not hasattr(classifier.module, "localize"):
        raise ValueError(
            f"{classifier.path}: this classifier has no 'localize' pixel head, so PixelCAM "
            "cannot explain it (its metadata says has_localize: false). Train one with "
            "`napari-pcim train --pixelcam`, or use method='pcim' or 'rise'"
        )


def pixelcam_attribute(
    localize: Callable[[torch.Tensor], torch.Tensor],
    inputs: torch.Tensor,
    targets: torch.Tensor,
    *,
    options: PixelCAMOptions | None = None,
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    stats: dict[str, float] | None = None,
) -> torch.Tensor:
    """Foreground maps (B, T, H, W) for tiles ``inputs`` (B, C, H, W); one copy per target."""
    opts = options or PixelCAMOptions()
    opts.validate()
    B, T = targets.shape
    out = torch.empty(B, T, *inputs.shape[-2:], device=inputs.device)
    t0 = time.perf_counter()
    with torch.inference_mode():
        for start in range(0, B, opts.batch_size):
            if should_stop is not None and should_stop():
                from napari_pcim.explainers.api import Cancelled

                raise Cancelled("PixelCAM cancelled")
            stop = min(start + opts.batch_size, B)
            fg = localize(inputs[start:stop]).float()
            out[start:stop] = fg[:, None].expand(-1, T, -1, -1)
            if progress is not None:
                progress(stop, B)
    if stats is not None:
        stats["forward_passes"] = B
        stats["forward_seconds"] = time.perf_counter() - t0
    return out
