"""The clickable well map of the Plate widget.

A small painted Qt widget: one rounded square per well laid out like the
physical plate (8 × 12 for 96 wells, 16 × 24 for 384), row letters on the left
and column numbers on top. Wells without images are greyed out; the others are
coloured by condition from the plate map, or by a per-well value (prediction,
attribution mass inside the ground truth, a ground-truth-free statistic) once one
is known. The current well gets a thick outline, pinned wells a pin dot, flagged
(outlier) wells a red outline. Clicking a well, or moving with
the arrow keys while the map has focus, emits :attr:`WellMap.well_clicked`.

Painting the grid ourselves keeps a 384-well plate cheap (no 384 child
widgets) and lets tests click a well at :meth:`WellMap.well_center`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from qtpy.QtCore import QEvent, QPoint, QRectF, QSize, Qt, Signal
from qtpy.QtGui import QColor, QFont, QKeyEvent, QMouseEvent, QPainter, QPaintEvent, QPen
from qtpy.QtWidgets import QSizePolicy, QToolTip, QWidget

# Qualitative palette (Tableau 10 without grey) for conditions, in order of appearance.
_PALETTE = (
    "#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2",
    "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac",
)
_ABSENT = QColor("#3a3a3a")
_FLAGGED = QColor("#ff2020")
_NO_VALUE = QColor("#6b6b6b")
_LABEL_MARGIN = 22  # px reserved for row letters / column numbers


def well_name(row: str, column: int | str) -> str:
    """``("B", 3) -> "B03"``: row letter(s) and a two-digit column, as in the contract."""
    return f"{row}{int(column):02d}"


def value_color(value: float) -> QColor:
    """Map a value in [0, 1] onto a blue → white → red ramp (low → high)."""
    v = min(max(float(value), 0.0), 1.0)
    if v < 0.5:
        t = v / 0.5
        return QColor(int(59 + t * (240 - 59)), int(76 + t * (240 - 76)), int(192 + t * (240 - 192)))
    t = (v - 0.5) / 0.5
    return QColor(int(240 - t * (240 - 180)), int(240 - t * (240 - 4)), int(240 - t * (240 - 38)))


class WellMap(QWidget):
    """A painted grid of wells; emits :attr:`well_clicked` with the well name."""

    well_clicked = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setMouseTracking(True)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.MinimumExpanding)
        self._rows: list[str] = []
        self._columns: list[int] = []
        self._present: set[str] = set()
        self._conditions: dict[str, str] = {}
        self._condition_colors: dict[str, QColor] = {}
        self._values: dict[str, float] = {}
        self._color_by = "condition"
        self._tooltips: dict[str, str] = {}
        self._current: str | None = None
        self._pinned: set[str] = set()
        self._flagged: set[str] = set()

    # -- content -------------------------------------------------------------------------------
    def set_plate(
        self,
        rows: Sequence[str],
        columns: Sequence[int],
        present: Sequence[str],
        conditions: Mapping[str, str],
    ) -> None:
        """Show a plate: the grid to draw, the wells that have images, their conditions."""
        self._rows, self._columns = list(rows), list(columns)
        self._present = set(present)
        self._conditions = dict(conditions)
        self._condition_colors = {}
        for well in sorted(self._conditions):
            cond = self._conditions[well]
            if cond not in self._condition_colors:
                self._condition_colors[cond] = QColor(
                    _PALETTE[len(self._condition_colors) % len(_PALETTE)]
                )
        self._values = {}
        self._color_by = "condition"
        self._current = None
        self._pinned = set()
        self._flagged = set()
        self.updateGeometry()
        self.update()

    def condition_colors(self) -> dict[str, QColor]:
        """The colour used for each condition (for a legend)."""
        return dict(self._condition_colors)

    def set_values(self, values: Mapping[str, float] | None) -> None:
        """Colour wells by a value in [0, 1]; ``None`` goes back to colouring by condition."""
        if values is None:
            self._color_by, self._values = "condition", {}
        else:
            self._color_by, self._values = "value", dict(values)
        self.update()

    def set_tooltips(self, tooltips: Mapping[str, str]) -> None:
        self._tooltips = dict(tooltips)

    def set_current(self, well: str | None) -> None:
        self._current = well
        self.update()

    def set_pinned(self, pinned: set[str]) -> None:
        self._pinned = set(pinned)
        self.update()

    def set_flagged(self, wells: set[str]) -> None:
        """Wells to outline in red (outlier explanations)."""
        self._flagged = set(wells)
        self.update()

    @property
    def flagged(self) -> set[str]:
        return set(self._flagged)

    @property
    def wells(self) -> list[str]:
        """Wells with images, in row-major order."""
        return [
            well_name(r, c) for r in self._rows for c in self._columns
            if well_name(r, c) in self._present
        ]

    def color_of(self, well: str) -> QColor:
        """The fill colour a well is painted with right now."""
        if well not in self._present:
            return _ABSENT
        if self._color_by == "value":
            value = self._values.get(well)
            return _NO_VALUE if value is None else value_color(value)
        return self._condition_colors.get(self._conditions.get(well, ""), _NO_VALUE)

    # -- geometry ------------------------------------------------------------------------------
    def _cell(self) -> float:
        if not self._rows or not self._columns:
            return 20.0
        w = (self.width() - _LABEL_MARGIN - 2) / len(self._columns)
        h = (self.height() - _LABEL_MARGIN - 2) / len(self._rows)
        return max(6.0, min(w, h))

    def well_rect(self, well: str) -> QRectF:
        """The well's square in widget coordinates."""
        for i, r in enumerate(self._rows):
            for j, c in enumerate(self._columns):
                if well_name(r, c) == well:
                    s = self._cell()
                    return QRectF(_LABEL_MARGIN + j * s, _LABEL_MARGIN + i * s, s, s)
        raise KeyError(f"well {well!r} is not on this plate map")

    def well_center(self, well: str) -> QPoint:
        return self.well_rect(well).center().toPoint()

    def well_at(self, pos: QPoint) -> str | None:
        s = self._cell()
        j = int((pos.x() - _LABEL_MARGIN) // s)
        i = int((pos.y() - _LABEL_MARGIN) // s)
        if pos.x() < _LABEL_MARGIN or pos.y() < _LABEL_MARGIN:
            return None
        if 0 <= i < len(self._rows) and 0 <= j < len(self._columns):
            return well_name(self._rows[i], self._columns[j])
        return None

    def sizeHint(self) -> QSize:
        cell = 22 if len(self._columns) <= 12 else 13
        return QSize(
            _LABEL_MARGIN + cell * max(len(self._columns), 1) + 2,
            _LABEL_MARGIN + cell * max(len(self._rows), 1) + 2,
        )

    def minimumSizeHint(self) -> QSize:
        cell = 16 if len(self._columns) <= 12 else 9
        return QSize(
            _LABEL_MARGIN + cell * max(len(self._columns), 1),
            _LABEL_MARGIN + cell * max(len(self._rows), 1),
        )

    def hasHeightForWidth(self) -> bool:
        return True

    def heightForWidth(self, width: int) -> int:
        if not self._columns:
            return 60
        s = (width - _LABEL_MARGIN - 2) / len(self._columns)
        return int(_LABEL_MARGIN + s * len(self._rows) + 2)

    # -- painting ------------------------------------------------------------------------------
    def paintEvent(self, event: QPaintEvent) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        s = self._cell()
        font = QFont(self.font())
        font.setPointSizeF(max(6.0, min(9.0, s * 0.45)))
        p.setFont(font)
        p.setPen(self.palette().windowText().color())
        for j, c in enumerate(self._columns):
            if len(self._columns) <= 12 or (j % 2 == 0):
                p.drawText(
                    QRectF(_LABEL_MARGIN + j * s, 0, s, _LABEL_MARGIN),
                    Qt.AlignmentFlag.AlignCenter, str(c),
                )
        for i, r in enumerate(self._rows):
            p.drawText(
                QRectF(0, _LABEL_MARGIN + i * s, _LABEL_MARGIN, s), Qt.AlignmentFlag.AlignCenter, r
            )
        for i, r in enumerate(self._rows):
            for j, c in enumerate(self._columns):
                well = well_name(r, c)
                rect = QRectF(_LABEL_MARGIN + j * s + 1, _LABEL_MARGIN + i * s + 1, s - 2, s - 2)
                p.setBrush(self.color_of(well))
                if well == self._current:
                    p.setPen(QPen(QColor("#ffffff"), max(2.0, s * 0.12)))
                elif well in self._flagged:
                    p.setPen(QPen(_FLAGGED, max(2.0, s * 0.12)))
                else:
                    p.setPen(QPen(QColor("#202020"), 1))
                p.drawRoundedRect(rect, s * 0.2, s * 0.2)
                if well in self._pinned:
                    p.setPen(Qt.PenStyle.NoPen)
                    p.setBrush(QColor("#ffffff"))
                    d = s * 0.3
                    p.drawEllipse(QRectF(rect.right() - d - 1, rect.top() + 1, d, d))
        p.end()

    # -- interaction ---------------------------------------------------------------------------
    def mousePressEvent(self, event: QMouseEvent) -> None:
        well = self.well_at(event.position().toPoint())
        if well is not None and well in self._present:
            self.setFocus()
            self.well_clicked.emit(well)
        super().mousePressEvent(event)

    def event(self, event: QEvent) -> bool:
        if event.type() == event.Type.ToolTip:
            well = self.well_at(event.pos())
            if well is None:
                QToolTip.hideText()
            else:
                QToolTip.showText(event.globalPos(), self.tooltip_for(well), self)
            return True
        return super().event(event)

    def tooltip_for(self, well: str) -> str:
        if well not in self._present:
            return f"{well}: no images"
        return self._tooltips.get(well) or f"{well}: {self._conditions.get(well, 'unknown')}"

    def keyPressEvent(self, event: QKeyEvent) -> None:
        moves = {
            Qt.Key.Key_Left: (0, -1), Qt.Key.Key_Right: (0, 1),
            Qt.Key.Key_Up: (-1, 0), Qt.Key.Key_Down: (1, 0),
        }
        step = moves.get(Qt.Key(event.key()))
        if step is None or not self._present:
            super().keyPressEvent(event)
            return
        target = self.neighbour(self._current, *step)
        if target is not None:
            self.well_clicked.emit(target)

    def neighbour(self, well: str | None, d_row: int, d_col: int) -> str | None:
        """The next well with images from ``well`` in a direction (wrapping along rows)."""
        order = self.wells
        if not order:
            return None
        if well is None or well not in order:
            return order[0]
        if d_col:
            return order[(order.index(well) + d_col) % len(order)]
        # vertical: same column, next row that has an image there
        i = next(k for k, r in enumerate(self._rows) if well.startswith(r) and well[len(r):].isdigit())
        col = int(well[len(self._rows[i]):])
        k = i + d_row
        while 0 <= k < len(self._rows):
            candidate = well_name(self._rows[k], col)
            if candidate in self._present:
                return candidate
            k += d_row
        return None
