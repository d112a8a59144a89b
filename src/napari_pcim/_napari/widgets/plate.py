"""The Plate dock widget: open a plate, browse its wells, load fields as layers.

Top to bottom: open buttons (a plate folder, a single file, or the demo plate,
generated once into the user cache dir), a one-line plate summary, the
clickable :class:`~napari_pcim._napari.widgets.well_map.WellMap`, a legend, and a row
with the field selector, the pin toggle and the "colour wells by" choice.
Clicking a well (or using the arrow keys on the map) loads it through the
shared :class:`~napari_pcim._napari.widgets.session.Session`.

"Open results…" opens a whole-plate result store (written by "Explain plate" or
``napari-pcim explain PLATE --all-wells --out RESULT.zarr``): its records colour the
well map, and each well then loaded gets its stored attribution maps as image layers
named like live results ("PCIM · treated · B03 f0"), beside its channels. With a store
open, "colour by" also offers its ground-truth-free statistics
(:data:`napari_pcim.plate_stats.STATISTICS`), and wells with an outlier explanation
(:meth:`ResultStore.outliers`) get a red outline and their reason in the tooltip. Fields
are numbered from 0, as everywhere in napari-pcim.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from qtpy.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from napari_pcim._napari.widgets.errors import report_failure
from napari_pcim._napari.widgets.qt import ProgressRelay
from napari_pcim._napari.widgets.session import get_session
from napari_pcim._napari.widgets.well_map import WellMap
from napari_pcim.layers import stored_map_layer_data
from napari_pcim.plate_stats import STATISTICS, span
from napari_pcim.vocabulary import FIRST_FIELD, HIT_CLASS, field_label

if TYPE_CHECKING:
    import napari
    from napari.layers import Layer

    from napari_pcim.batch import ResultStore
    from napari_pcim.plate_io import Plate

LEGEND_ENTRIES = 5  # conditions named under the well map; the tooltip names every well's
#: GT-free statistics of a result store, by the words "colour by" shows.
STAT_MODES = {key.replace("_", " "): key for key in STATISTICS}
COLOR_MODES = ("condition", "prediction", "attribution in GT", *STAT_MODES)


class PlateWidget(QWidget):
    """Open a plate and pick wells/fields; see the module docstring."""

    def __init__(self, napari_viewer: napari.Viewer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        self.session = get_session(napari_viewer)

        self.open_folder_btn = QPushButton("Open plate folder…")
        self.open_file_btn = QPushButton("Open file…")
        self.demo_btn = QPushButton("Demo plate")
        self.demo_btn.setToolTip(
            "Generate (once, into the cache dir) and open a synthetic 96-well foci plate"
        )
        self.results_btn = QPushButton("Open results…")
        self.results_btn.setToolTip(
            "Open a whole-plate result store (RESULT.zarr): colour wells by its predictions and "
            "show the stored attribution maps of each well you click"
        )
        self.info = QLabel("No plate open.")
        self.info.setWordWrap(True)
        self.well_map = WellMap()
        self.legend = QLabel()
        self.legend.setWordWrap(True)
        self.field_box = QSpinBox()
        self.field_box.setRange(FIRST_FIELD, FIRST_FIELD)
        self.field_box.setToolTip("Field of the well (numbered from 0)")
        self.pin_btn = QPushButton("Pin well")
        self.pin_btn.setCheckable(True)
        self.pin_btn.setToolTip("Keep this well's layers when another well is opened (side by side)")
        self.color_by = QComboBox()
        # Long statistic names must not widen the dock (and narrow the canvas): elide them.
        self.color_by.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.color_by.setMinimumContentsLength(6)
        self.color_by.addItems(COLOR_MODES)
        self.color_by.setToolTip("Colour wells by plate-map condition, prediction P(hit), the "
                                 "share of attribution inside the ground truth, or (with results "
                                 "open) a statistic that needs no ground truth")
        # z stacks / time series: which plane makes a field (hidden for single-plane plates)
        self.z_box = QComboBox()
        self.z_box.setToolTip("z stacks: the maximum projection, the middle plane or one plane "
                              "(0-based); recorded with the results")
        self.t_box = QSpinBox()
        self.t_box.setToolTip("Time point (0-based)")
        self.status = QLabel()
        self.status.setWordWrap(True)

        buttons = QHBoxLayout()
        for b in (self.open_folder_btn, self.open_file_btn, self.demo_btn, self.results_btn):
            buttons.addWidget(b)
        row = QHBoxLayout()
        row.addWidget(QLabel("field"))
        row.addWidget(self.field_box)
        row.addWidget(self.pin_btn)
        row.addWidget(QLabel("colour by"))
        row.addWidget(self.color_by)
        self.planes_row = QWidget()
        planes = QHBoxLayout(self.planes_row)
        planes.setContentsMargins(0, 0, 0, 0)
        for w in (QLabel("z"), self.z_box, QLabel("time"), self.t_box):
            planes.addWidget(w)
        self.planes_row.hide()
        layout = QVBoxLayout(self)
        layout.addLayout(buttons)
        layout.addWidget(self.info)
        layout.addWidget(self.well_map)
        layout.addWidget(self.legend)
        layout.addLayout(row)
        layout.addWidget(self.planes_row)
        layout.addWidget(self.status)
        layout.addStretch(1)

        self.open_folder_btn.clicked.connect(self._ask_folder)
        self.open_file_btn.clicked.connect(self._ask_file)
        self.demo_btn.clicked.connect(lambda: self.open_demo_plate())
        self.results_btn.clicked.connect(self._ask_results)
        self.well_map.well_clicked.connect(self.select_well)
        self.field_box.valueChanged.connect(self._field_changed)
        self.pin_btn.clicked.connect(self._toggle_pin)
        self.color_by.currentTextChanged.connect(lambda _: self._refresh_colors())
        self.z_box.activated.connect(lambda _: self._reopen_planes())
        self.t_box.editingFinished.connect(self._reopen_planes)

        s = self.session
        s.plate_changed.connect(self._on_plate)
        s.current_changed.connect(self._on_current)
        s.pins_changed.connect(self._on_pins)
        s.predictions_changed.connect(self._refresh_colors)
        s.loading_failed.connect(self._say)
        s.results_changed.connect(self._on_results)
        self.destroyed.connect(lambda *_: self._disconnect(s))
        if s.plate is not None:
            self._on_plate(s.plate)

    def _disconnect(self, s: Any) -> None:
        for sig, slot in (
            (s.plate_changed, self._on_plate), (s.current_changed, self._on_current),
            (s.pins_changed, self._on_pins), (s.predictions_changed, self._refresh_colors),
            (s.loading_failed, self._say), (s.results_changed, self._on_results),
        ):
            sig.disconnect(slot, missing_ok=True)

    # -- opening -------------------------------------------------------------------------------
    def _ask_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Open plate (OME-Zarr or instrument folder)")
        if path:
            self.open_plate(path)

    def _ask_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open an image file as a one-well plate")
        if path:
            self.open_plate(path)

    def open_plate(self, path: str | Path, z: int | str | None = None, t: int | None = None
                   ) -> Plate | None:
        """Open ``path`` as the session's plate (``z``, ``t``: the plane choice; the channel map
        saved beside the plate is applied); errors are shown, not raised."""
        from napari_pcim.plate_io import PlateError, open_plate

        try:
            plate = open_plate(path, z=z, t=t, channel_map=True)
        except (PlateError, OSError, ValueError) as exc:
            self._error(str(exc))
            return None
        self.session.set_plate(plate)
        return plate

    def _ask_results(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Open a result store (RESULT.zarr)")
        if path:
            self.open_results(path)

    def open_results(self, path: str | Path) -> ResultStore | None:
        """Browse the result store at ``path``, opening its plate first when another is open."""
        from napari_pcim.batch import ResultStore

        try:
            results = ResultStore.open(path)
        except ValueError as exc:
            self._error(str(exc))
            return None
        plate_path = Path(results.meta.get("plate", ""))
        plate = self.session.plate
        same = plate is not None and Path(plate.path).resolve() == plate_path.resolve()
        if not same and self.open_plate(plate_path) is None:
            self._error(f"{path}: its plate {plate_path} cannot be opened")
            return None
        self.session.set_results(results)
        self.color_by.setCurrentText("prediction")
        return results

    def open_demo_plate(self, phenotype: str = "foci") -> Any:
        """Open the cached demo plate, generating it first in a thread worker if needed."""
        from napari.qt.threading import create_worker
        from napari.utils import progress

        from napari_pcim.cache import demo_plate_path, ensure_demo_plate

        path = demo_plate_path(phenotype)
        if path.exists():
            self.open_plate(path)
            return None
        self.demo_btn.setEnabled(False)
        self.status.setText("Generating the demo plate (once)…")
        pbar = progress(total=0, desc="napari-pcim demo plate")
        worker = create_worker(
            ensure_demo_plate, phenotype, progress=ProgressRelay(pbar),
            _start_thread=False, _ignore_errors=True,
        )

        def _done(p: Path) -> None:
            pbar.close()
            self.demo_btn.setEnabled(True)
            self.status.setText("")
            self.open_plate(p)

        def _failed(exc: BaseException) -> None:
            pbar.close()
            self.demo_btn.setEnabled(True)
            self.status.setText(report_failure("generating the demo plate", exc))

        worker.returned.connect(_done)
        worker.errored.connect(_failed)
        worker.start()
        return worker

    def _say(self, msg: str) -> None:
        self.status.setText(msg)

    def _error(self, msg: str) -> None:
        from napari.utils.notifications import show_error

        self.status.setText(msg)
        show_error(msg)

    # -- session updates -----------------------------------------------------------------------
    def _on_plate(self, plate: Plate | None) -> None:
        if plate is None:
            self.info.setText("No plate open.")
            self.well_map.set_plate([], [], [], {})
            self.legend.setText("")
            return
        self.well_map.set_plate(plate.rows, plate.columns, plate.wells, plate.conditions)
        fmt = (f"{plate.plate_format}-well" if plate.plate_format
               else f"{len(plate.rows)}×{len(plate.columns)}")
        px = "unknown pixel size" if plate.pixel_size is None else f"{plate.pixel_size[1]:g} µm/px"
        self.info.setText(
            f"<b>{Path(plate.path).name}</b>: {fmt}, {len(plate.wells)} wells with images; "
            f"channels {', '.join(plate.channel_names)}; {px}"
        )
        self._show_planes(plate)
        self.status.setText("Click a well to load it.")
        self.color_by.setCurrentIndex(0)
        self._refresh_colors()

    def _show_planes(self, plate: Plate) -> None:
        """Offer the z/time choice when the plate has several planes or time points."""
        from napari_pcim.plate_io.planes import Z_CHOICES

        pl = plate.planes
        n_z, n_t = int(pl.get("n_z", 1)), int(pl.get("n_t", 1))
        self.z_box.clear()
        self.z_box.addItems([*Z_CHOICES, *(str(i) for i in range(n_z))])
        self.z_box.setCurrentText(str(pl.get("z") if pl.get("z") is not None else "middle"))
        self.t_box.setRange(0, max(n_t - 1, 0))
        self.t_box.setValue(int(pl.get("t", 0)))
        self.planes_row.setVisible(n_z > 1 or n_t > 1)

    def _reopen_planes(self) -> None:
        """Reopen the plate with the chosen z plane (or projection) and time point."""
        plate = self.session.plate
        if plate is None or (self.z_box.currentText(), self.t_box.value()) == (
                str(plate.planes.get("z")), int(plate.planes.get("t", 0))):
            return
        self.open_plate(plate.path, z=self.z_box.currentText(), t=self.t_box.value())

    def _on_results(self, results: ResultStore | None) -> None:
        if results is None:
            return
        method = results.meta.get("method", "?")
        self.status.setText(
            f"Results {Path(results.path).name}: {method}, {len(results.records)} fields, model "
            f"{Path(str(results.meta.get('model', '?'))).name}. Click a well to show its maps."
        )
        if self.session.well is not None:
            self.show_stored_maps(self.session.well, self.session.field)

    def show_stored_maps(self, well: str, field: int) -> list[Layer]:
        """Add the stored attribution maps of a shown well/field as image layers."""
        from napari_pcim.batch import read_field_maps
        from napari_pcim.explainers import method_label

        s = self.session
        view = s.views.get(well)
        if s.results is None or view is None or view.field != field:
            return []
        if s.results.record(well, field) is None:
            return []
        try:
            maps, _, record = read_field_maps(s.results.path, well, field)
        except (KeyError, OSError, ValueError) as exc:
            self._error(str(exc))
            return []
        shown = {layer.name for layer in view.layers}
        layer_data = [
            t for t in stored_map_layer_data(
                maps, record, s.results.meta, label=method_label(str(s.results.meta.get("method"))),
                classes=s.results.classes, scale=view.scale, store_path=str(s.results.path),
                scales=s.scales,
            )
            if t[1]["name"] not in shown  # shown already (the well was clicked again)
        ]
        return s.add_layers(well, layer_data)

    def _on_current(self, well: str, field: int) -> None:
        self.well_map.set_current(well)
        plate = self.session.plate
        n = plate.n_fields(well) if plate is not None else 1
        self.field_box.blockSignals(True)
        self.field_box.setRange(FIRST_FIELD, FIRST_FIELD + max(1, n) - 1)
        self.field_box.setValue(field)
        self.field_box.blockSignals(False)
        self.pin_btn.setChecked(well in self.session.pinned)
        shown = f"Showing {field_label(well, field)} ({n} field{'s' if n != 1 else ''})"
        self.status.setText(f"{shown}.")
        if self.session.results is not None and self.show_stored_maps(well, field):
            self.status.setText(f"{shown}, with its stored maps.")

    def _on_pins(self) -> None:
        self.well_map.set_pinned(set(self.session.pinned))
        self.pin_btn.setChecked(self.session.well in self.session.pinned)

    # -- actions -------------------------------------------------------------------------------
    def select_well(self, well: str, field: int | None = None) -> Any:
        """Load ``well`` (keeping the field number when the well has it); returns the worker."""
        plate = self.session.plate
        if plate is None:
            return None
        if field is None:
            field = min(self.field_box.value(), FIRST_FIELD + plate.n_fields(well) - 1)
        self.well_map.set_current(well)
        self.status.setText(f"Loading {field_label(well, field)}…")
        try:
            return self.session.load_well(well, field)
        except ValueError as exc:
            self._error(str(exc))
            return None

    def _field_changed(self, value: int) -> None:
        if self.session.well is not None:
            self.select_well(self.session.well, value)

    def _toggle_pin(self) -> None:
        if self.session.well is None:
            self.pin_btn.setChecked(False)
            return
        self.session.toggle_pin(self.session.well)

    def _refresh_colors(self) -> None:
        s = self.session
        plate = s.plate
        if plate is None:
            return
        mode = self.color_by.currentText()
        stat = span(s.results.well_statistic(STAT_MODES[mode])) if (
            mode in STAT_MODES and s.results is not None) else ({}, 0.0, 0.0)
        self.legend.setText(self._legend(mode, stat[1:]))
        if mode == "prediction":
            hit = _hit_index(s)
            self.well_map.set_values(
                {w: float(p[hit]) for w, p in s.predictions.items()} if hit is not None else {}
            )
        elif mode == "attribution in GT":
            self.well_map.set_values(dict(s.scores))
        elif mode in STAT_MODES:
            self.well_map.set_values(stat[0])
        else:
            self.well_map.set_values(None)
        flags = s.results.outliers() if s.results is not None else {}
        self.well_map.set_flagged(set(flags))
        self.well_map.set_tooltips({w: self._tooltip(w, flags.get(w, [])) for w in plate.wells})

    def _legend(self, mode: str, bounds: tuple[float, float] = (0.0, 1.0)) -> str:
        if mode == "prediction":
            return ("P(hit): <span style='color:#3b4cc0'>■</span> 0 … "
                    "<span style='color:#b40426'>■</span> 1; grey: not predicted yet")
        if mode == "attribution in GT":
            return ("share of attribution inside the ground truth: "
                    "<span style='color:#3b4cc0'>■</span> 0 … <span style='color:#b40426'>■</span> 1;"
                    " grey: not explained, or no ground truth")
        if mode in STAT_MODES:
            return (f"{STATISTICS[STAT_MODES[mode]]}: <span style='color:#3b4cc0'>■</span> {bounds[0]:.3g} … "
                    f"<span style='color:#b40426'>■</span> {bounds[1]:.3g} (this plate's range); grey: no results; "
                    "red outline: outlier explanation (hover for why)")
        colors = self.well_map.condition_colors()
        shown = sorted(colors, key=lambda c: (c.upper().startswith("CPD"), c))[:LEGEND_ENTRIES]
        more = len(colors) - len(shown)
        return " ".join(
            f"<span style='color:{colors[cond].name()}'>■</span>&nbsp;{cond}" for cond in shown
        ) + (f" … and {more} more (hover a well)" if more > 0 else "")

    def _tooltip(self, well: str, flags: list[str]) -> str:
        s = self.session
        plate = s.plate
        assert plate is not None
        lines = [f"<b>{well}</b>: {plate.conditions.get(well, 'unknown condition')}"]
        if well in plate.phenotypes:
            lines.append(f"expected: {plate.phenotypes[well]}")
        probs = s.predictions.get(well)
        classes = s.class_names()
        if probs is not None and len(classes) == len(probs):
            best = int(probs.argmax())
            lines.append(f"predicted: {classes[best]} ({probs[best]:.2f})")
        if well in s.scores:
            lines.append(f"attribution inside GT: {s.scores[well]:.2f}")
        rec = next((r for r in s.results.records if r["well"] == well), None) if s.results else None
        if rec is not None and "dominant_channel" in rec:
            lines.append(f"dominant channel: {rec['dominant_channel']} ({rec['dominant_share']:.2f})")
        lines += [f"<b>! outlier</b> {reason}" for reason in flags]
        return "<br>".join(lines)


def _hit_index(session: Any) -> int | None:
    """Index of the hit class (:data:`~napari_pcim.vocabulary.HIT_CLASS`) when present, else
    the last class."""
    classes = session.class_names()
    if not classes:
        return None
    return classes.index(HIT_CLASS) if HIT_CLASS in classes else len(classes) - 1
