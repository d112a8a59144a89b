"""Small Qt helpers shared by the napari-pcim widgets.

:class:`ProgressRelay` turns the core's ``progress(done, total)`` callback, which
runs in a worker thread, into updates of a napari progress bar (shown in the
activity dock) in the main thread, by way of a queued Qt signal.
"""

from __future__ import annotations

from typing import Any

from qtpy.QtCore import QObject, Signal


class _ProgressSignal(QObject):
    progressed = Signal(int, int)


class ProgressRelay:
    """Callable ``(done, total)`` safe to call from any thread; updates ``pbar`` in the GUI thread."""

    def __init__(self, pbar: Any) -> None:
        self.pbar = pbar
        self._signal = _ProgressSignal()
        self._signal.progressed.connect(self._update)

    def __call__(self, done: int, total: int) -> None:
        self._signal.progressed.emit(int(done), int(total))

    def _update(self, done: int, total: int) -> None:
        pbar = self.pbar
        if pbar.total != total:
            pbar.total = total
        pbar.n = done
        pbar.refresh()
