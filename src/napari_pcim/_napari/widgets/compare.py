"""The Compare dock widget: chosen wells × chosen methods as a labelled grid on the canvas.

The wells and methods offered are those of the attribution layers already in the viewer
(kind ``"attribution"``; run Explain on a well first). Compare takes, for each checked
(well, method), the newest such layer and lays the maps out below everything shown, a
row per method and a column per well, with a Shapes layer labelling each tile with its
well, method and class (:func:`napari_pcim.layers.compare_grid_data`). Tiles of one
method share its contrast range (``Session.scales``; new maps restyle them too). A new
grid replaces the previous one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from napari_pcim._napari.widgets.session import get_session, layer_kind
from napari_pcim.layers import compare_grid_data

if TYPE_CHECKING:
    import napari
    from napari.layers import Layer

_GRID_KINDS = ("compare_tile", "compare_labels")


class CompareWidget(QWidget):
    """Lay chosen wells × methods out as a labelled grid; see the module docstring."""

    def __init__(self, napari_viewer: napari.Viewer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        self.session = get_session(napari_viewer)
        self.well_list, self.method_list = QListWidget(), QListWidget()
        self.compare_btn = QPushButton("Compare")
        self.status = QLabel("Run Explain on two wells or more, then compare them here.")
        self.status.setWordWrap(True)
        lists = QVBoxLayout()  # stacked: side by side, two lists would widen the dock column
        for title, box in (("wells", self.well_list), ("methods", self.method_list)):
            column = QVBoxLayout()
            column.addWidget(QLabel(title))
            column.addWidget(box)
            box.setMaximumHeight(120)
            lists.addLayout(column)
        layout = QVBoxLayout(self)
        layout.addLayout(lists)
        layout.addWidget(self.compare_btn)
        layout.addWidget(self.status)
        layout.addStretch(1)
        self.compare_btn.clicked.connect(lambda: self.compare())
        events = napari_viewer.layers.events
        for event in (events.inserted, events.removed):
            event.connect(self.refresh)
            self.destroyed.connect(lambda *_, e=event: e.disconnect(self.refresh))
        self.refresh()

    def _maps(self) -> list[Layer]:
        return [ly for ly in self.viewer.layers if layer_kind(ly) == "attribution"]

    def refresh(self, *_: Any) -> None:
        """Offer the wells and methods of the attribution layers shown (new ones checked)."""
        maps = self._maps()
        for box, key in ((self.well_list, "well"), (self.method_list, "label")):
            checked = {t for t, c in _items(box) if not c}
            box.clear()
            for value in dict.fromkeys(str(ly.metadata.get(key)) for ly in maps):
                item = QListWidgetItem(value)
                item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
                item.setCheckState(Qt.CheckState.Unchecked if value in checked else Qt.CheckState.Checked)
                box.addItem(item)
        self.compare_btn.setEnabled(bool(maps))

    def compare(self, wells: list[str] | None = None, methods: list[str] | None = None) -> list[Layer]:
        """Show the grid of ``wells`` × ``methods`` (labels, e.g. "PCIM"; default: the checked
        ones); returns its layers. Pairs without a map are named in the status line."""
        wells = wells or [t for t, c in _items(self.well_list) if c]
        methods = methods or [t for t, c in _items(self.method_list) if c]
        newest = {(ly.metadata.get("well"), ly.metadata.get("label")): ly for ly in self._maps()}
        chosen = [(w, m) for m in methods for w in wells]
        missing = [f"{m} of {w}" for w, m in chosen if (w, m) not in newest]
        tiles = [newest[k] for k in chosen if k in newest]
        if not tiles:
            self.status.setText("No attribution maps of these wells and methods yet: run Explain first.")
            return []
        for layer in [ly for ly in self.viewer.layers if layer_kind(ly) in _GRID_KINDS]:
            self.viewer.layers.remove(layer)
        (y0, x0), (y1, _) = (np.asarray(e)[-2:] for e in self.viewer.layers.extent.world)
        data = compare_grid_data(
            [(np.asarray(ly.data), ly.metadata, tuple(ly.scale[-2:])) for ly in tiles],
            self.session.scales, origin=(y1 + 0.1 * (y1 - y0), x0),
        )
        added = [getattr(self.viewer, f"add_{kind}")(d, **kw) for d, kw, kind in data]
        self.viewer.reset_view()
        self.viewer.layers.selection.active = added[0]  # its colourbar shows
        note = f"; no map yet of {', '.join(missing)}" if missing else ""
        self.status.setText(f"{len(tiles)} tile(s): a row per method, a column per well{note}.")
        return added


def _items(box: QListWidget) -> list[tuple[str, bool]]:
    return [(box.item(i).text(), box.item(i).checkState() == Qt.CheckState.Checked)
            for i in range(box.count())]
