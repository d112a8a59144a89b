"""The Evaluate dock widget: how well does an attribution map find the ground truth?

Pick an attribution layer and a ground-truth Labels layer (any non-zero label counts as
"inside"), press Evaluate, and read the localisation metrics of
:func:`napari_pcim.metrics.evaluate_map`, named in words (the code name is in each
row's tooltip). The newest attribution layer and the ground truth of its well and
field are preselected; channel layers are never offered as an attribution. "Score
all maps of this field" scores every attribution layer of the chosen map's well and
field at once. The table has one row per metric and one column per scored layer, all
rows visible; "Copy as CSV" puts one row per layer on the clipboard.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSizePolicy,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from napari_pcim._napari.widgets.session import layer_kind
from napari_pcim._napari.writer import metrics_csv
from napari_pcim.layers import short_name

if TYPE_CHECKING:
    import napari

#: Layer kinds that are attribution maps (the whole map, or one channel's part of it).
MAP_KINDS = ("attribution", "attribution_channel")


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


def metric_label(name: str) -> str:
    """A metric's name in words (``"relevance_rank"`` -> ``"relevance rank accuracy"``)."""
    from napari_pcim.metrics import METRICS

    info = METRICS.get(name)
    return info.label if info is not None else name.replace("_", " ")


def _place(layer: Any) -> tuple[Any, int]:
    """A layer's (well, field); a missing field is the first one."""
    return layer.metadata.get("well"), int(layer.metadata.get("field") or 0)


def _is_gt(layer: Any) -> bool:
    """A ground-truth labels layer: napari-pcim's (``metadata["label"] == "gt"``), or one
    the user named with "gt"."""
    return layer.metadata.get("label") == "gt" or "gt" in layer.name.lower()


class EvaluateWidget(QWidget):
    """Localisation metrics of attribution layers; see the module docstring."""

    def __init__(self, napari_viewer: napari.Viewer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        self.map_box = QComboBox()
        self.gt_box = QComboBox()
        for box in (self.map_box, self.gt_box):
            box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            box.setMinimumContentsLength(12)
        self.eval_btn = QPushButton("Evaluate")
        self.all_btn = QPushButton("Score all maps of this field")
        self.all_btn.setToolTip("Score every attribution layer of the chosen map's well and "
                                "field against the ground truth: one column per layer")
        self.copy_btn = QPushButton("Copy as CSV")
        self.copy_btn.setEnabled(False)
        self.table = QTableWidget(0, 0)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
        self.status = QLabel()
        self.status.setWordWrap(True)
        #: {attribution layer name: {metric: value}} of the last evaluation.
        self.results: dict[str, dict[str, float]] = {}
        self._gt_name = ""
        self._age: dict[int, int] = {}  # id(layer) -> insertion count: the newest map wins

        form = QFormLayout()
        form.addRow("attribution", self.map_box)
        form.addRow("ground truth", self.gt_box)
        buttons = QHBoxLayout()
        buttons.addWidget(self.eval_btn)
        buttons.addWidget(self.copy_btn)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.all_btn)
        layout.addWidget(self.table)
        layout.addWidget(self.status)
        layout.addStretch(1)
        self._fit_table()

        self.eval_btn.clicked.connect(lambda: self.evaluate())
        self.all_btn.clicked.connect(lambda: self.evaluate_all())
        self.copy_btn.clicked.connect(self.copy_csv)
        self.map_box.currentTextChanged.connect(lambda _: self._match_gt())
        events = napari_viewer.layers.events
        for ev in (events.removed, events.reordered):
            ev.connect(self._refresh)
        events.inserted.connect(self._inserted)
        self.destroyed.connect(lambda *_: self._disconnect(events))
        for layer in napari_viewer.layers:
            self._age[id(layer)] = len(self._age)
        self._refresh()
        self._select_newest()

    def _disconnect(self, events: Any) -> None:
        for ev in (events.removed, events.reordered):
            ev.disconnect(self._refresh)
        events.inserted.disconnect(self._inserted)

    def _maps(self) -> list[Any]:
        """Attribution layers, newest first."""
        from napari.layers import Image

        maps = [layer for layer in self.viewer.layers
                if isinstance(layer, Image) and layer_kind(layer) in MAP_KINDS]
        return sorted(maps, key=lambda layer: -self._age.get(id(layer), -1))

    def _inserted(self, event: Any) -> None:
        self._age[id(event.value)] = max(self._age.values(), default=-1) + 1
        self._refresh()
        if layer_kind(event.value) in MAP_KINDS:
            self._select_newest()

    def _refresh(self, *_: Any) -> None:
        """Refill the dropdowns (attribution layers newest first; labels, GT first)."""
        from napari.layers import Labels

        gts = sorted((layer for layer in self.viewer.layers if isinstance(layer, Labels)),
                     key=lambda layer: not _is_gt(layer))
        for box, items in ((self.map_box, self._maps()), (self.gt_box, gts)):
            current = box.currentText()
            box.blockSignals(True)
            box.clear()
            box.addItems([layer.name for layer in items])
            box.setCurrentIndex(box.findText(current) if current else -1)
            box.blockSignals(False)
        if self.gt_box.currentIndex() < 0:
            self._match_gt()
        ready = self.map_box.count() > 0 and self.gt_box.count() > 0
        self.eval_btn.setEnabled(ready)
        self.all_btn.setEnabled(ready)

    def _select_newest(self) -> None:
        """Preselect the newest attribution layer and the ground truth of its field."""
        if self.map_box.count():
            self.map_box.setCurrentIndex(0)
            self._match_gt()

    def _match_gt(self) -> None:
        """Preselect the GT layer of the same well and field as the chosen attribution layer."""
        name = self.map_box.currentText()
        if name not in self.viewer.layers:
            return
        place = _place(self.viewer.layers[name])
        candidates = [self.viewer.layers[self.gt_box.itemText(i)] for i in range(self.gt_box.count())]
        gts = [c for c in candidates if _is_gt(c)]
        match = [c for c in gts if _place(c) == place] or [c for c in gts if c.metadata.get("well") is None]
        if match:
            self.gt_box.setCurrentText(match[0].name)

    def field_maps(self, attribution: str | None = None) -> list[str]:
        """Names of the attribution layers of the same well and field as ``attribution``
        (default: the chosen one), oldest first."""
        name = attribution or self.map_box.currentText()
        if name not in self.viewer.layers:
            return []
        place = _place(self.viewer.layers[name])
        return [layer.name for layer in reversed(self._maps()) if _place(layer) == place]

    def evaluate(self, attribution: str | None = None, gt: str | None = None) -> dict[str, float]:
        """Score one attribution layer (default: the dropdowns' choice) and show it."""
        attribution = attribution or self.map_box.currentText()
        scored = self._score([attribution], gt)
        return scored.get(attribution, {})

    def evaluate_all(self, gt: str | None = None) -> dict[str, dict[str, float]]:
        """Score every attribution layer of the chosen map's well and field: one column each."""
        return self._score(self.field_maps(), gt)

    def _score(self, names: list[str], gt: str | None) -> dict[str, dict[str, float]]:
        from napari.utils.notifications import show_error

        gt = gt or self.gt_box.currentText()
        try:
            if not names or any(n not in self.viewer.layers for n in names) \
                    or gt not in self.viewer.layers:
                raise ValueError("pick an attribution layer and a ground-truth labels layer")
            results = {n: evaluate_layers(self.viewer.layers[n], self.viewer.layers[gt])
                       for n in names}
        except ValueError as exc:
            self.status.setText(str(exc))
            show_error(str(exc))
            return {}
        self.results, self._gt_name = results, gt
        self.map_box.setCurrentText(names[-1] if len(names) == 1 else self.map_box.currentText())
        self.gt_box.setCurrentText(gt)
        self._show(results)
        self.copy_btn.setEnabled(True)
        self.status.setText(f"{', '.join(names)} vs {gt}")
        return results

    def _show(self, results: dict[str, dict[str, float]]) -> None:
        from napari_pcim.metrics import METRICS

        metrics = list(dict.fromkeys(m for r in results.values() for m in r))
        self.table.clear()
        self.table.setRowCount(len(metrics))
        self.table.setColumnCount(len(results))
        headers = ["value"] if len(results) == 1 else [
            short_name(n, self.viewer.layers[n].metadata) for n in results]
        self.table.setHorizontalHeaderLabels(headers)
        for c, name in enumerate(results):
            self.table.horizontalHeaderItem(c).setToolTip(name)
        for r, metric in enumerate(metrics):
            item = QTableWidgetItem(metric_label(metric))
            info = METRICS.get(metric)
            better = "" if info is None else f" ({'higher' if info.higher_is_better else 'lower'} is better)"
            item.setToolTip(f"{metric}: {info.description if info else ''}{better}")
            self.table.setVerticalHeaderItem(r, item)
            for c, values in enumerate(results.values()):
                value = values.get(metric, float("nan"))
                text = "n/a" if np.isnan(value) else f"{value:.3f}"
                self.table.setItem(r, c, QTableWidgetItem(text))
        self._fit_table()

    def _fit_table(self) -> None:
        """Make the table exactly as tall as its rows: every metric visible, no scrolling."""
        self.table.resizeRowsToContents()
        height = self.table.horizontalHeader().sizeHint().height() + 2 * self.table.frameWidth()
        height += sum(self.table.rowHeight(r) for r in range(self.table.rowCount()))
        if self.table.horizontalScrollBar().isVisible():
            height += self.table.horizontalScrollBar().sizeHint().height()
        self.table.setFixedHeight(height)

    def csv_text(self) -> str:
        """The last results as CSV: one row per attribution layer ("" before any)."""
        if not self.results:
            return ""
        return metrics_csv([(n, self._gt_name, r) for n, r in self.results.items()])

    def copy_csv(self) -> None:
        QApplication.clipboard().setText(self.csv_text())
        self.status.setText("Metrics copied to the clipboard as CSV.")
