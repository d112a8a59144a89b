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
from typing import Any

import torch

from napari_pcim.explainers.options import validate_options
from napari_pcim.explainers.registry import Explainer, Job, register
from napari_pcim.explainers.runtime import check_finite, check_stop, report


@dataclass
class PixelCAMOptions:
    """PixelCAM's options (see :mod:`napari_pcim.explainers.options` for the metadata keys)."""

    batch_size: int = field(default=16, metadata={"help": "tiles per forward pass of the pixel head",
                                                  "min": 1})


def localize_missing(classifier: Any) -> str:
    """Why ``classifier`` has no PixelCAM ``localize`` head to read out; "" when it has one."""
    if classifier.meta.has_localize and hasattr(classifier.module, "localize"):
        return ""
    return (
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
    validate_options(opts, "PixelCAM")
    B, T = targets.shape
    out = torch.empty(B, T, *inputs.shape[-2:], device=inputs.device)
    t0 = time.perf_counter()
    with torch.inference_mode():
        for start in range(0, B, opts.batch_size):
            check_stop(should_stop, "PixelCAM")
            stop = min(start + opts.batch_size, B)
            fg = localize(inputs[start:stop]).float()
            check_finite(fg, "foreground maps", "its own input", "PixelCAM", torch.arange(start, stop))
            out[start:stop] = fg[:, None].expand(-1, T, -1, -1)
            report(progress, stop, B)
    if stats is not None:
        stats["forward_passes"] = B
        stats["forward_seconds"] = time.perf_counter() - t0
    return out


def _attribute(job: Job, opts: PixelCAMOptions) -> torch.Tensor:
    """The registry's call: the ``localize`` head's foreground map of every tile."""
    return pixelcam_attribute(
        job.forward.localize, job.tiles, job.targets, options=opts, progress=job.progress,
        should_stop=job.should_stop, stats=job.stats,
    )


register(Explainer("pixelcam", "PixelCAM", PixelCAMOptions, _attribute,
                   unavailable=localize_missing, needs_baseline=False))
