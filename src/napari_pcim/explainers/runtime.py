"""What every method's loop shares: cancel polling, progress, finiteness checks, CUDA out-of-memory retries."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)


class Cancelled(Exception):
    """``should_stop()`` returned True: the explanation was abandoned, nothing is returned."""


def check_stop(should_stop: Callable[[], bool] | None, what: str = "explanation") -> None:
    """Raise :class:`Cancelled` when ``should_stop()`` says so (None: never)."""
    if should_stop is not None and should_stop():
        raise Cancelled(f"{what} cancelled")


class NonFinite(ValueError):
    """A model call gave NaN or inf: ``what`` (logits, probabilities, ...) for image ``index``
    of the method's inputs, on ``on`` ("a masked input") during ``stage`` ("RISE").

    ``explain()`` turns it into a message naming the field and the model file."""

    def __init__(self, kind: str, what: str, index: int, on: str, stage: str) -> None:
        super().__init__(f"the classifier returned {kind} {what} for image {index} on {on} ({stage})")
        self.kind, self.what, self.index, self.on, self.stage = kind, what, index, on, stage


def check_finite(values: Any, what: str, on: str, stage: str, images: Any = None) -> None:
    """Raise :class:`NonFinite` unless ``values`` (one row per image) are all finite.

    ``images`` gives each row's image number (default: the row number).
    """
    import torch

    finite = torch.isfinite(values).reshape(values.shape[0], -1).all(dim=1)
    if bool(finite.all()):
        return
    row = int((~finite).nonzero()[0, 0])
    kind = "NaN" if bool(torch.isnan(values[row]).any()) else "infinite"
    index = row if images is None else int(images[row])
    raise NonFinite(kind, what, index, on, stage)


def report(progress: Callable[[int, int], None] | None, done: int, total: int) -> None:
    """Call ``progress(done, total)`` when a callback was given."""
    if progress is not None:
        progress(done, total)


def smaller_batch(n: int, what: str) -> int:
    """Call in an ``except torch.cuda.OutOfMemoryError`` block: the halved batch size.

    A batch of one cannot shrink: the out-of-memory error is re-raised. Otherwise
    the retry is logged and the CUDA cache freed before the caller retries.
    """
    import torch

    if n <= 1:
        raise  # noqa: PLE0704 - re-raises the caller's out-of-memory error
    half = max(1, n // 2)
    log.warning("%s: CUDA out of memory; halving the batch to %d and retrying", what, half)
    torch.cuda.empty_cache()
    return half
