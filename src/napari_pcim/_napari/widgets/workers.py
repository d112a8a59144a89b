"""Bodies of the Explain widget's thread workers (no Qt here): one field, or a whole plate.

Both run torch on all cores but one (:func:`worker_threads`), so the GUI thread
keeps a core and the viewer stays responsive while they compute.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from napari_pcim.vocabulary import field_label

if TYPE_CHECKING:
    from napari_pcim.batch import BatchJob, BatchReport
    from napari_pcim.classifier import Classifier
    from napari_pcim.explainers import Attribution
    from napari_pcim.plate_io import Plate


@dataclass
class RunContext:
    """Everything a one-field run needs, frozen when Run is pressed."""

    well: str
    field: int
    data: np.ndarray
    channels: list[str]
    scale: tuple[float, float]
    translate: tuple[float, float]
    classifier: Classifier
    device: str
    method: str
    target: Any
    seed: int
    options: dict[str, Any]
    plate: str
    per_channel: bool = False


def worker_threads() -> int:
    """torch intra-op threads while a worker computes: all cores but one for the GUI thread.

    ``$NAPARI_PCIM_WORKER_THREADS`` overrides it (``0`` keeps torch's own setting).
    With torch on every core the GUI thread competes with the pool and stalls.
    """
    env = os.environ.get("NAPARI_PCIM_WORKER_THREADS")
    if env is not None:
        return int(env)
    return max(1, (os.cpu_count() or 2) - 1)


#: One compute at a time sets torch's (process-wide) thread count: a run and the time
#: estimate's sweep must not interleave their set/restore pairs.
_THREADS_LOCK = threading.Lock()


@contextmanager
def _compute_threads() -> Iterator[None]:
    import torch

    with _THREADS_LOCK:
        wanted, before = worker_threads(), torch.get_num_threads()
        if wanted > 0:
            torch.set_num_threads(min(wanted, before))
        try:
            yield
        finally:
            torch.set_num_threads(before)


def explain_field(
    ctx: RunContext, progress: Callable[[int, int], None], should_stop: Callable[[], bool]
) -> Attribution:
    """Explain the captured field with the captured method, options and per-channel switch."""
    from napari_pcim.explainers import explain

    with _compute_threads():
        return explain(
            ctx.classifier, ctx.data, method=ctx.method, target=ctx.target, device=ctx.device,
            progress=progress, should_stop=should_stop, plate_channels=ctx.channels,
            seed=ctx.seed, field_names=[field_label(ctx.well, ctx.field)],
            per_channel=ctx.per_channel, **ctx.options,
        )


def explain_plate(
    job: BatchJob, store: Path, plate: Plate, classifier: Classifier,
    progress: Callable[[int, int], None], should_stop: Callable[[], bool],
    skip_failed: bool = False,
) -> BatchReport:
    """Run a whole-plate job into ``store`` with the session's open plate and classifier;
    ``skip_failed`` records failing fields and carries on."""
    from napari_pcim.batch import run_plate

    with _compute_threads():
        return run_plate(
            job, store, plate=plate, classifier=classifier, progress=progress,
            should_stop=should_stop, skip_failed=skip_failed,
        )


#: The explainer's own work beyond the model calls (masks, sums, blending), as a factor
#: on the forward passes (``bench speed`` measures RISE at 1.0–1.2× its forward floor).
OVERHEAD = 1.15


def estimate_seconds(classifier: Classifier, device: str, method: str, options: dict[str, Any],
                     field_shape: tuple[int, int]) -> tuple[float, float] | None:
    """(typical, most) seconds to explain one field of ``field_shape`` on this machine.

    The cost model of ``bench speed``: the method's forward passes
    (:func:`~napari_pcim.explainers.batching.forward_passes`) times the model's seconds
    per image at its tuned batch size with the worker's torch threads (a short sweep the
    first time per model, device, threads and tile, then cached; explain() reuses it).
    None for a method the model does not cover.
    """
    import torch

    from napari_pcim.devices import resolve_device
    from napari_pcim.explainers.batching import forward_passes, tune
    from napari_pcim.tiling import TilePlan

    plan = TilePlan.for_classifier(classifier.meta, tuple(field_shape))
    passes = forward_passes(method, options, plan.n_tiles)
    if passes is None:
        return None
    dev = resolve_device(device)
    classifier.to(dev)
    sample = torch.zeros(1, len(classifier.meta.channels), *plan.tile, device=dev)
    with _compute_threads():
        _, per_image = tune(classifier.module, sample, model=classifier.sha256)
    return passes[0] * per_image * OVERHEAD, passes[1] * per_image * OVERHEAD
