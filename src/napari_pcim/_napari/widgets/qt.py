"""Small Qt helpers shared by the napari-pcim widgets.

:class:`ProgressRelay` turns the core's ``progress(done, total)`` callback, which
runs in a worker thread, into updates of a napari progress bar (shown in the
activity dock) and of a :class:`DockProgress` (a bar in the dock itself, with an
estimate of the time left) in the main thread, by way of a queued Qt signal.
"""

from __future__ import annotations

import time
from typing import Any

from qtpy.QtCore import QObject, Signal
from qtpy.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QWidget


class _ProgressSignal(QObject):
    progressed = Signal(int, int)


def time_left(elapsed: float, done: int, total: int) -> float | None:
    """Seconds left at the pace so far (None before the first step, or with no total)."""
    if done <= 0 or total <= 0:
        return None
    return elapsed / done * max(0, total - done)


def format_seconds(seconds: float) -> str:
    """``"42 s"``, ``"3 min 05 s"``, ``"1 h 02 min"``."""
    s = round(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


class DockProgress(QWidget):
    """A progress bar with "done/total · about N s left", hidden between jobs."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.bar = QProgressBar()
        self.bar.setTextVisible(True)
        self.eta = QLabel()
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.bar, 1)
        layout.addWidget(self.eta)
        self._t0 = time.monotonic()
        self.setVisible(False)

    def start(self) -> None:
        """A job starts: an empty, busy bar and the clock at 0."""
        self._t0 = time.monotonic()
        self.bar.setRange(0, 0)  # busy until the first report gives a total
        self.eta.setText("starting…")
        self.setVisible(True)

    def update_progress(self, done: int, total: int) -> None:
        """``done`` of ``total`` steps are finished."""
        if total > 0:
            self.bar.setRange(0, total)
            self.bar.setValue(min(done, total))
        left = time_left(time.monotonic() - self._t0, done, total)
        self.eta.setText(
            f"{done}/{total}" + ("" if left is None else f" · about {format_seconds(left)} left")
        )

    def finish(self, cancelled: bool = False) -> None:
        """The job ended: the bar stays where it got to, beside the time it took."""
        if self.bar.maximum() == 0:
            self.bar.setRange(0, 1)
        took = format_seconds(time.monotonic() - self._t0)
        self.eta.setText(f"cancelled after {took}" if cancelled else f"ended after {took}")


class ProgressRelay:
    """Callable ``(done, total)`` safe to call from any thread; updates ``pbar`` (and
    ``dock``, if given) in the GUI thread."""

    def __init__(self, pbar: Any, dock: DockProgress | None = None) -> None:
        self.pbar = pbar
        self.dock = dock
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
        if self.dock is not None:
            self.dock.update_progress(done, total)
