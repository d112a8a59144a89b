"""What every method's loop shares: cancel polling, progress, CUDA out-of-memory retries."""

from __future__ import annotations

import logging
from collections.abc import Callable

log = logging.getLogger(__name__)


class Cancelled(Exception):
    """``should_stop()`` returned True: the explanation was abandoned, nothing is returned."""


def check_stop(should_stop: Callable[[], bool] | None, what: str = "explanation") -> None:
    """Raise :class:`Cancelled` when ``should_stop()`` says so (None: never)."""
    if should_stop is not None and should_stop():
        raise Cancelled(f"{what} cancelled")


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
