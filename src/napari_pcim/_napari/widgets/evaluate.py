"""The Evaluate dock widget: how well does an attribution map find the ground truth?

Pick an attribution image layer and a ground-truth Labels layer (any non-zero
label counts as "inside"), press Evaluate, and read the localisation metrics of
:func:`napari_pcim.metrics.evaluate_map` in a small table; "Copy as CSV" puts
the table on the clipboard for a spreadsheet or a lab notebook.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
from qtpy.QtWidgets import (
    QApplication,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from napari_pcim._napari.widgets.session import layer_kind
from napari_pcim._napari.writer import metrics_csv

if TYPE_CHECKING:
    import napari


def evaluate_layers(attribution: Any, gt: Any) -> dict[str, float]:
    """Metrics of an attribution layer against a labels layer (same grid required)."""
    from napari_pcim.metrics import evaluate_map

    amap = np.asarray(attribution.data, dtype=np.float32)
    mask = np.asarray(gt.data) > 0
    if amap.shape != mask.shape:
        raise ValueError(
            f"layer {attribution.name!r} is {amap.shape} but {gt.name!r} is {mask.shape}: "
            "pick the ground truth of the same field"
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # degenerate masks give NaN; the table shows it
        return evaluate_map(amap, mask)


class EvaluateWidget(QWidget):
    """Localisation metrics of one attribution layer; see the module docstring."""

    def __init__(self, napari_viewer: napari.Viewer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        self.map_box = QComboBox()
        self.gt_box = QComboBox()
        self.eval_btn = QPushButton("Evaluate")
        self.copy_btn = QPushButton("Copy as CSV")
        self.copy_btn.setEnabled(False)
        self.table = QTableWidget(0, 2)
        self.table.setHorizontalHeaderLabels(["metric", "value"])
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.table.verticalHeader().setVisible(False)
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.results: dict[str, float] = {}

        form = QFormLayout()
        form.addRow("attribution", self.map_box)
        form.addRow("ground truth", self.gt_box)
        buttons = QHBoxLayout()
        buttons.addWidget(self.eval_btn)
        buttons.addWidget(self.copy_btn)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.table)
        layout.addWidget(self.status)

        self.eval_btn.clicked.connect(lambda: self.evaluate())
        self.copy_btn.clicked.connect(self.copy_csv)
        events = napari_viewer.layers.events
        for ev in (events.inserted, events.removed, events.reordered):
            ev.connect(self._refresh)
        self.destroyed.connect(lambda *_: self._disconnect(events))
        self._refresh()

    def _disconnect(self, events: Any) -> None:
        for ev in (events.inserted, events.removed, events.reordered):
            ev.disconnect(self._refresh)

    def _refresh(self, *_: Any) -> None:
        """Refill the dropdowns: image layers (attribution first), then labels (GT first)."""
        from napari.layers import Image, Labels

        layers = list(self.viewer.layers)
        maps = sorted(
            (layer for layer in layers if isinstance(layer, Image) and layer.ndim == 2),
            key=lambda layer: layer_kind(layer) != "attribution",
        )
        gts = sorted(
            (layer for layer in layers if isinstance(layer, Labels)),
            key=lambda layer: not _is_gt(layer),
        )
        for box, items in ((self.map_box, maps), (self.gt_box, gts)):
            current = box.currentText()
            box.blockSignals(True)
            box.clear()
            box.addItems([layer.name for layer in items])
            if current in [layer.name for layer in items]:
                box.setCurrentText(current)
            elif box is self.gt_box and self.map_box.currentText():
                self._match_gt()
            box.blockSignals(False)
        self.eval_btn.setEnabled(bool(maps) and bool(gts))

    def _match_gt(self) -> None:
        """Preselect the GT layer of the same well as the selected attribution layer."""
        name = self.map_box.currentText()
        if name not in self.viewer.layers:
            return
        well = self.viewer.layers[name].metadata.get("well")
        for i in range(self.gt_box.count()):
            candidate = self.viewer.layers[self.gt_box.itemText(i)]
            if candidate.metadata.get("well") == well and _is_gt(candidate):
                self.gt_box.setCurrentIndex(i)
                return

    def evaluate(self, attribution: str | None = None, gt: str | None = None) -> dict[str, float]:
        """Compute and show the metrics; layer names default to the dropdowns' choice."""
        from napari.utils.notifications import show_error

        from napari_pcim.metrics import METRICS

        attribution = attribution or self.map_box.currentText()
        gt = gt or self.gt_box.currentText()
        try:
            if attribution not in self.viewer.layers or gt not in self.viewer.layers:
                raise ValueError("pick an attribution layer and a ground-truth labels layer")
            results = evaluate_layers(self.viewer.layers[attribution], self.viewer.layers[gt])
        except ValueError as exc:
            self.status.setText(str(exc))
            show_error(str(exc))
            return {}
        self.results, self._names = results, (attribution, gt)
        self.map_box.setCurrentText(attribution)
        self.gt_box.setCurrentText(gt)
        self.table.setRowCount(len(results))
        for i, (name, value) in enumerate(results.items()):
            item = QTableWidgetItem(name)
            info = METRICS.get(name)
            if info is not None:
                better = "higher" if info.higher_is_better else "lower"
                item.setToolTip(f"{info.description} ({better} is better)")
            self.table.setItem(i, 0, item)
            self.table.setItem(i, 1, QTableWidgetItem("n/a" if np.isnan(value) else f"{value:.3f}"))
        self.copy_btn.setEnabled(True)
        self.status.setText(f"{attribution} vs {gt}")
        return results

    def csv_text(self) -> str:
        if not self.results:
            return ""
        return metrics_csv([(*self._names, self.results)])

    def copy_csv(self) -> None:
        QApplication.clipboard().setText(self.csv_text())
        self.status.setText("Metrics copied to the clipboard as CSV.")


def _is_gt(layer: Any) -> bool:
    """A ground-truth labels layer: napari-pcim's (``metadata["label"] == "gt"``), or one
    the user named with "gt"."""
    return layer.metadata.get("label") == "gt" or "gt" in layer.name.lower()
