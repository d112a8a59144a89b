"""The one console progress adapter: a tqdm bar on stderr behind a ``progress(done, total)`` callback.

Core functions report progress through a plain callback and never draw anything;
every CLI command turns that into a bar with :func:`console_progress`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def console_progress(desc: str, *, unit: str = "it", leave: bool = True) -> Iterator[Callable[[int, int], None]]:
    """Yield ``progress(done, total)`` that moves a tqdm bar on stderr; the bar closes on exit.

    ``total`` may change between calls (it is often known only once work starts);
    tqdm redraws at most every ``mininterval``, so calling it often is cheap.
    """
    from tqdm import tqdm

    bar = tqdm(total=None, desc=desc, unit=unit, leave=leave, file=sys.stderr)

    def progress(done: int, total: int) -> None:
        if bar.total != total:
            bar.total = total
            bar.refresh()
        bar.update(done - bar.n)

    try:
        yield progress
    finally:
        bar.close()
