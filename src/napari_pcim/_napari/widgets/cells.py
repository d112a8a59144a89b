"""The Cells dock widget: which cells carry the evidence of an attribution map.

Pick a Labels layer (the plate's nuclei or cells, or one drawn or segmented by the
user) and an attribution layer of the same field, then "compute":
:func:`napari_pcim.cells.cell_table` gives one row per object (area, sum, mean, max,
share of the field's positive attribution, and ``share_<channel>`` after a
per-channel run). The table becomes the Labels layer's ``features`` (napari's
convention: hovering a cell shows its row) and is shown here, sortable; clicking a
row centres the camera on that cell. "colour cells by attribution" adds an image
whose cells are filled with their share (:func:`napari_pcim.layers.cell_share_layer_data`);
"save CSV…" writes the table with well, field and label id columns atomically,
asking before it replaces a file. When the field has both nuclei and cells, the
split of the positive attribution into nucleus, cytoplasm and background is shown.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from qtpy.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from napari_pcim._napari.widgets.session import get_session, layer_kind
from napari_pcim.layers import cell_share_layer_data
from napari_pcim.vocabulary import field_stem

if TYPE_CHECKING:
    import napari
    import pandas as pd
    from napari.layers import Layer


class _NumberItem(QTableWidgetItem):
    """A table cell showing a number briefly that sorts by its value."""

    def __init__(self, value: float) -> None:
        super().__init__(f"{value:.4g}" if isinstance(value, float) else str(value))
        self.value = float(value)

    def __lt__(self, other: QTableWidgetItem) -> bool:
        return self.value < getattr(other, "value", float("-inf"))


class CellsWidget(QWidget):
    """Per-cell attribution of a field; see the module docstring."""

    def __init__(self, napari_viewer: napari.Viewer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        self.session = get_session(napari_viewer)
        self.table: pd.DataFrame | None = None
        self._source: tuple[Layer, Layer] | None = None  # (attribution, labels) of the table

        self.labels_box = QComboBox()
        self.labels_box.setToolTip("The objects: any Labels layer of the map's field")
        self.map_box = QComboBox()
        self.map_box.setToolTip("The attribution map whose evidence is counted per object")
        self.compute_btn = QPushButton("compute cell table")
        self.colour_btn = QPushButton("colour cells by attribution")
        self.save_btn = QPushButton("save CSV…")
        self.view = QTableWidget()
        self.view.setSortingEnabled(True)
        self.view.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.view.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.view.setMinimumHeight(140)
        self.compartments = QLabel()
        self.compartments.setWordWrap(True)
        self.status = QLabel("Explain a field, then compute its cell table.")
        self.status.setWordWrap(True)

        form = QFormLayout()
        form.addRow("labels", self.labels_box)
        form.addRow("attribution", self.map_box)
        buttons = QHBoxLayout()
        buttons.addWidget(self.colour_btn)
        buttons.addWidget(self.save_btn)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.compute_btn)
        layout.addWidget(self.compartments)
        layout.addWidget(self.view, 1)
        layout.addLayout(buttons)
        layout.addWidget(self.status)

        self.compute_btn.clicked.connect(lambda: self.compute())
        self.colour_btn.clicked.connect(lambda: self.colour_cells())
        self.save_btn.clicked.connect(lambda: self._save_dialog())
        self.view.cellClicked.connect(lambda row, _col: self.centre_on_row(row))
        events = napari_viewer.layers.events
        events.inserted.connect(self._refresh)
        events.removed.connect(self._refresh)
        self.destroyed.connect(lambda *_: self._disconnect(events))
        self._refresh()
        self._update_enabled()

    def _disconnect(self, events: Any) -> None:
        events.inserted.disconnect(self._refresh)
        events.removed.disconnect(self._refresh)

    # -- choices -------------------------------------------------------------------------------
    def _refresh(self, *_: Any) -> None:
        """Offer the viewer's Labels layers and attribution maps (newest map first)."""
        from napari.layers import Labels

        maps = [ly.name for ly in self.viewer.layers if layer_kind(ly) == "attribution"][::-1]
        labels = [ly.name for ly in self.viewer.layers
                  if isinstance(ly, Labels) and layer_kind(ly) != "attribution_top"]
        # the objects of the newest map's field come first: cells, then nuclei
        well = self.viewer.layers[maps[0]].metadata.get("well") if maps else None
        rank = {"cells": 0, "nuclei": 1}
        labels.sort(key=lambda n: (self.viewer.layers[n].metadata.get("well") != well,
                                   rank.get(self.viewer.layers[n].metadata.get("label"), 2)))
        # a new map re-picks its field's objects; otherwise the chosen labels stay
        keep = self.labels_box.currentText() if maps[:1] == [self.map_box.itemText(0)] else None
        for box, names in ((self.map_box, maps), (self.labels_box, labels)):
            box.blockSignals(True)
            box.clear()
            box.addItems(names)
            box.blockSignals(False)
        if keep in labels:
            self.labels_box.setCurrentText(keep)
        self._update_enabled()

    def _update_enabled(self) -> None:
        self.compute_btn.setEnabled(self.map_box.count() > 0 and self.labels_box.count() > 0)
        has_table = self.table is not None
        self.colour_btn.setEnabled(has_table)
        self.save_btn.setEnabled(has_table)

    def _error(self, msg: str) -> None:
        from napari.utils.notifications import show_error

        self.status.setText(msg)
        show_error(msg)

    # -- the table -----------------------------------------------------------------------------
    def compute(self, map_name: str | None = None, labels_name: str | None = None) -> Any:
        """Compute, attach and show the cell table of a map over a Labels layer; returns it
        (None after a one-line error naming the layers)."""
        from napari_pcim.cells import cell_table

        map_name = map_name or self.map_box.currentText()
        labels_name = labels_name or self.labels_box.currentText()
        if map_name not in self.viewer.layers or labels_name not in self.viewer.layers:
            self._error("choose an attribution layer and a Labels layer first")
            return None
        amap, labels = self.viewer.layers[map_name], self.viewer.layers[labels_name]
        well, field = amap.metadata.get("well"), amap.metadata.get("field")
        other = labels.metadata.get("well")
        if other is not None and (other, labels.metadata.get("field", field)) != (well, field):
            self._error(f"labels layer {labels_name!r} is of another field than {map_name!r}")
            return None
        if amap.data.shape != labels.data.shape:
            self._error(f"labels layer {labels_name!r} has shape {labels.data.shape}; "
                        f"expected {amap.data.shape} like {map_name!r}")
            return None
        try:
            table = cell_table(amap.data, labels.data, self.session.channel_maps.get(amap))
        except ValueError as exc:
            self._error(f"cell table of {map_name!r}: {exc}")
            return None
        labels.features = table.assign(index=table["label"])
        self.table, self._source = table, (amap, labels)
        self._fill(table)
        self._show_compartments(amap)
        self.status.setText(f"{len(table)} objects of {labels_name!r}, largest share first.")
        self._update_enabled()
        return table

    def _fill(self, table: pd.DataFrame) -> None:
        self.view.setSortingEnabled(False)
        self.view.clear()
        self.view.setColumnCount(len(table.columns))
        self.view.setRowCount(len(table))
        self.view.setHorizontalHeaderLabels([str(c) for c in table.columns])
        for r, row in enumerate(table.itertuples(index=False)):
            for c, value in enumerate(row):
                self.view.setItem(r, c, _NumberItem(value.item() if hasattr(value, "item") else value))
        self.view.setSortingEnabled(True)
        self.view.resizeColumnsToContents()

    def _show_compartments(self, amap: Layer) -> None:
        from napari_pcim.cells import compartment_shares

        view = self.session.views.get(amap.metadata.get("well"))
        found = view is not None and view.field == amap.metadata.get("field")
        if not (found and {"nuclei", "cells"} <= set(view.labels)):
            self.compartments.setText("")
            return
        shares = compartment_shares(amap.data, view.labels["nuclei"], view.labels["cells"])
        self.compartments.setText(
            "positive attribution: " + ", ".join(f"{k} {v:.0%}" for k, v in shares.items())
        )

    def row_label(self, row: int) -> int:
        """The label id shown in table row ``row`` (as sorted now)."""
        col = [self.view.horizontalHeaderItem(c).text() for c in range(self.view.columnCount())]
        return int(self.view.item(row, col.index("label")).value)

    def centre_on_row(self, row: int) -> tuple[float, ...] | None:
        """Centre the camera on the cell of table row ``row``; returns its world centroid."""
        from scipy import ndimage

        if self._source is None:
            return None
        labels = self._source[1]
        centroid = ndimage.center_of_mass(np.asarray(labels.data) == self.row_label(row))
        world = tuple(float(v) for v in labels.data_to_world(centroid))
        scene = getattr(self.viewer, "scene", self.viewer)  # napari >= 0.9 keeps it in .scene
        scene.camera.center = world
        return world

    # -- outputs -------------------------------------------------------------------------------
    def colour_cells(self) -> list[Layer]:
        """Add an image of the table's objects filled with their share."""
        if self.table is None or self._source is None:
            return []
        amap, labels = self._source
        well, field = amap.metadata["well"], int(amap.metadata["field"])
        layer = cell_share_layer_data(
            labels.data, self.table, name=amap.name, well=well, field=field,
            scale=tuple(labels.scale), translate=tuple(labels.translate),
        )
        return self.session.add_layers(well, [layer])

    def csv_table(self) -> pd.DataFrame:
        """The table as saved: well, field, labels and map names first, then the statistics."""
        assert self.table is not None and self._source is not None
        amap, labels = self._source
        front = {"well": amap.metadata.get("well"), "field": amap.metadata.get("field"),
                 "labels": labels.name, "attribution": amap.name}
        return self.table.assign(**front)[[*front, *self.table.columns]]

    def save_csv(self, path: str | Path, overwrite: bool = False) -> Path | None:
        """Write :meth:`csv_table` to ``path`` atomically; an existing file is replaced only
        with ``overwrite`` or after the user says yes. Returns the path, or None."""
        from napari_pcim.atomic import write_text

        if self.table is None:
            self._error("compute a cell table first")
            return None
        path = Path(path)
        if path.exists() and not overwrite:
            answer = QMessageBox.question(
                self, "Replace file?", f"{path} already exists. Replace it?",
                QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                QMessageBox.StandardButton.No,
            )
            if answer != QMessageBox.StandardButton.Yes:
                self.status.setText(f"Not saved: {path} already exists.")
                return None
        try:
            write_text(path, self.csv_table().to_csv(index=False), overwrite=True)
        except OSError as exc:
            self._error(f"could not save {path}: {exc}")
            return None
        self.status.setText(f"Saved {path}.")
        return path

    def _save_dialog(self) -> None:
        meta = self._source[0].metadata if self._source else {}
        stem = f"{field_stem(meta['well'], int(meta['field']))}_cells" if "well" in meta else "cells"
        path, _ = QFileDialog.getSaveFileName(
            self, "Save cell table", f"{stem}.csv", "CSV (*.csv)",
            options=QFileDialog.Option.DontConfirmOverwrite,
        )
        if path:
            self.save_csv(path)
