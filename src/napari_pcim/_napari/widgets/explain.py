"""The Explain dock widget: attribution maps of the current field, or of a whole plate.

Choose a method (PCIM, RISE; PixelCAM only for classifiers whose metadata says
``has_localize``), a target (the predicted class, one class, or all) and the
options (defaults come from the explainer's options dataclass; rarely changed
ones sit under "Advanced"), then Run. The job runs in a napari thread worker;
its progress shows in napari's activity dock and Cancel stops it without adding
anything. Everything the result needs (well, field, raw data, scale, offset,
model, options) is captured when Run is pressed, so switching wells meanwhile
cannot mislabel the result.

Each map becomes an image layer named like ``"PCIM · treated · B03 f1"`` with
the method, options, target, probabilities, model hash, timings, well and field
in its ``metadata``; "top 5 %" adds a Labels layer of the map's top pixels.

"Explain plate" runs the headless whole-plate path (:func:`napari_pcim.batch.run_plate`)
over all wells (or the current and pinned ones) in a thread worker. It writes a
resumable OME-Zarr result store (by default in the user cache dir, named after the
plate, the method and a hash of the job, so rerunning the same job resumes it);
afterwards the store's records give each well's prediction and the share of
attribution inside the ground truth, which the Plate widget colours the well map
by, and clicking a well shows its stored maps.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from napari_pcim._napari.widgets.options import OptionsForm
from napari_pcim._napari.widgets.qt import ProgressRelay
from napari_pcim._napari.widgets.session import KIND, ResultStore, field_label, get_session

if TYPE_CHECKING:
    import napari

    from napari_pcim.batch import BatchJob, BatchReport
    from napari_pcim.classifier import Classifier

#: Display names of the methods, in dropdown order.
METHOD_LABELS = {"pcim": "PCIM", "rise": "RISE", "pixelcam": "PixelCAM"}
TOP_FRACTION = 0.05
COLORMAPS = ("inferno", "magma")


def options_class(method: str) -> type | None:
    """The options dataclass of ``method`` (None when the explain module lacks the method)."""
    from napari_pcim.explainers import METHOD_OPTIONS

    return METHOD_OPTIONS.get(method)


def pixelcam_note(classifier: Classifier | None) -> str:
    """Why PixelCAM cannot run now, or "" when it can."""
    from napari_pcim.explainers import METHOD_OPTIONS

    if "pixelcam" not in METHOD_OPTIONS:
        return "PixelCAM: not available in this version of the explainers."
    if classifier is None or not classifier.meta.has_localize:
        return (
            "PixelCAM needs a model with a localisation head (has_localize; "
            "`napari-pcim train --pixelcam`)."
        )
    return ""


@dataclass
class RunContext:
    """Everything a run needs, frozen when Run is pressed."""

    well: str
    field: int
    data: np.ndarray
    labels: dict[str, np.ndarray]
    channels: list[str]
    scale: tuple[float, float]
    translate: tuple[float, float]
    classifier: Classifier
    device: str
    method: str
    target: Any
    seed: int
    options: dict[str, Any]
    plate: str


class ExplainWidget(QWidget):
    """Run explainers on the current field or the plate; see the module docstring."""

    def __init__(self, napari_viewer: napari.Viewer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        self.session = get_session(napari_viewer)
        self.worker: Any = None
        self._stop: threading.Event | None = None
        self._forms: dict[str, OptionsForm] = {}

        self.method_box = QComboBox()
        for key, label in METHOD_LABELS.items():
            self.method_box.addItem(label, key)
        self.method_note = QLabel()
        self.method_note.setWordWrap(True)
        self.target_box = QComboBox()
        self.seed_box = QSpinBox()
        self.seed_box.setRange(0, 2**31 - 2)
        self.seed_box.setToolTip("Seed of the random draws (RISE masks); same seed, same maps")
        self.options_holder = QVBoxLayout()
        self.top_box = QCheckBox(f"add a labels layer of the top {TOP_FRACTION:.0%} pixels")
        self.run_btn = QPushButton("Run")
        self.cancel_btn = QPushButton("Cancel")
        self.cancel_btn.setEnabled(False)
        self.status = QLabel("Load a plate, a well and a model first.")
        self.status.setWordWrap(True)

        self.scope_box = QComboBox()
        self.scope_box.addItems(["all wells", "current + pinned wells"])
        self.plate_btn = QPushButton("Explain plate")
        self.plate_btn.setToolTip(
            "Explain every field of the wells into a result store (a rerun of the same job "
            "resumes it); the well map can then be coloured by prediction or by attribution "
            "inside the ground truth, and clicking a well shows its stored maps"
        )
        self.store_edit = QLineEdit()
        self.store_edit.setPlaceholderText("result store: automatic, in the cache dir")
        self.store_edit.setToolTip("Folder of the OME-Zarr result store (RESULT.zarr); empty: "
                                   "one per plate, method and options in the user cache dir")
        self.store_btn = QPushButton("…")
        self.store_btn.setToolTip("Choose where the result store goes")

        form = QFormLayout()
        form.addRow("method", self.method_box)
        form.addRow("", self.method_note)
        form.addRow("target", self.target_box)
        form.addRow("seed", self.seed_box)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_btn)
        buttons.addWidget(self.cancel_btn)
        plate_group = QGroupBox("Whole plate")
        plate_box = QVBoxLayout(plate_group)
        plate_row = QHBoxLayout()
        plate_row.addWidget(self.scope_box, 1)
        plate_row.addWidget(self.plate_btn)
        store_row = QHBoxLayout()
        store_row.addWidget(self.store_edit, 1)
        store_row.addWidget(self.store_btn)
        plate_box.addLayout(plate_row)
        plate_box.addLayout(store_row)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(self.options_holder)
        layout.addWidget(self.top_box)
        layout.addLayout(buttons)
        layout.addWidget(plate_group)
        layout.addWidget(self.status)
        layout.addStretch(1)

        self.method_box.currentIndexChanged.connect(lambda _: self._show_options())
        self.run_btn.clicked.connect(lambda: self.run())
        self.cancel_btn.clicked.connect(self.cancel)
        self.plate_btn.clicked.connect(lambda: self.explain_plate())
        self.store_btn.clicked.connect(self._ask_store)

        s = self.session
        s.classifier_changed.connect(self._on_classifier)
        s.current_changed.connect(self._update_enabled)
        s.plate_changed.connect(self._update_enabled)
        self.destroyed.connect(lambda *_: self._disconnect(s))
        self._on_classifier(s.classifier)

    def _disconnect(self, s: Any) -> None:
        s.classifier_changed.disconnect(self._on_classifier, missing_ok=True)
        s.current_changed.disconnect(self._update_enabled, missing_ok=True)
        s.plate_changed.disconnect(self._update_enabled, missing_ok=True)

    # -- form ----------------------------------------------------------------------------------
    @property
    def method(self) -> str:
        return self.method_box.currentData()

    def set_method(self, method: str) -> None:
        self.method_box.setCurrentIndex(self.method_box.findData(method))

    def form(self, method: str | None = None) -> OptionsForm:
        """The options form of ``method`` (default: the selected one), built on first use."""
        method = method or self.method
        if method not in self._forms:
            self._forms[method] = OptionsForm(method, options_class(method))
            self.options_holder.addWidget(self._forms[method])
        return self._forms[method]

    def _show_options(self) -> None:
        current = self.form()
        for form in self._forms.values():
            form.setVisible(form is current)
        self._update_enabled()

    def _on_classifier(self, classifier: Classifier | None) -> None:
        self.target_box.clear()
        self.target_box.addItem("predicted class", "predicted")
        for name in classifier.meta.classes if classifier else ():
            self.target_box.addItem(name, name)
        self.target_box.addItem("all classes", "all")
        item = self.method_box.model().item(self.method_box.findData("pixelcam"))
        note = pixelcam_note(classifier)
        item.setEnabled(not note)
        item.setToolTip(note)
        self.method_note.setText(note)
        if note and self.method == "pixelcam":
            self.set_method("pcim")
        self._show_options()

    def _update_enabled(self, *_: Any) -> None:
        s = self.session
        busy = self.worker is not None
        ready = s.classifier is not None and s.current_view() is not None
        self.run_btn.setEnabled(ready and not busy)
        self.plate_btn.setEnabled(s.classifier is not None and s.plate is not None and not busy)
        self.cancel_btn.setEnabled(busy)
        if not busy:
            if s.plate is None:
                self.status.setText("Open a plate first (Plate widget).")
            elif s.classifier is None:
                self.status.setText("Load a model first (Model widget).")
            elif s.current_view() is None:
                self.status.setText("Click a well to load it.")

    # -- single field --------------------------------------------------------------------------
    def _capture(self) -> RunContext:
        s = self.session
        view, clf, plate = s.current_view(), s.classifier, s.plate
        if view is None or clf is None or plate is None:
            raise ValueError("open a plate, load a well and a model before explaining")
        first = view.layers[0] if view.layers else None
        options = self.form().values()
        if options.get("segmentation") == "labels":
            regions = view.labels.get("cells", view.labels.get("nuclei"))
            if regions is None:
                raise ValueError(
                    f"RISE segmentation 'labels' needs a cells or nuclei label image; well "
                    f"{view.well} has {sorted(view.labels) or 'none'}"
                )
            options["regions"] = regions
        return RunContext(
            well=view.well, field=view.field, data=view.data, labels=dict(view.labels),
            channels=list(plate.channel_names), scale=view.scale,
            translate=tuple(first.translate[-2:]) if first is not None else (0.0, 0.0),
            classifier=clf, device=s.device, method=self.method,
            target=self.target_box.currentData() or "predicted", seed=self.seed_box.value(),
            options=options, plate=str(plate.path),
        )

    def run(self) -> Any:
        """Explain the current field in a thread worker; returns the worker (or None)."""
        from napari.qt.threading import create_worker
        from napari.utils import progress

        if self.worker is not None:
            return None
        try:
            ctx = self._capture()
        except (ValueError, KeyError) as exc:
            self._error(str(exc))
            return None
        label = f"{METHOD_LABELS[ctx.method]} · {field_label(ctx.well, ctx.field)}"
        stop = threading.Event()
        pbar = progress(total=0, desc=label)
        worker = create_worker(
            _explain_field, ctx, ProgressRelay(pbar), stop.is_set,
            _start_thread=False, _ignore_errors=True,
        )

        def _done(attribution: Any) -> None:
            if not stop.is_set():
                self._add_result(ctx, attribution)
                self.status.setText(f"{label}: done in {_total_time(attribution):.1f} s.")

        worker.returned.connect(_done)
        worker.errored.connect(lambda exc: self._failed(label, exc))
        worker.finished.connect(lambda: self._finished(pbar))
        self._start(worker, stop, f"{label}: running…")
        return worker

    def _start(self, worker: Any, stop: threading.Event, text: str) -> None:
        self.worker, self._stop = worker, stop
        self.status.setText(text)
        self._update_enabled()
        worker.start()

    def _finished(self, pbar: Any) -> None:
        pbar.close()
        self.worker, self._stop = None, None
        self._update_enabled()

    def cancel(self) -> None:
        """Stop the running job; nothing it computed is added."""
        if self._stop is not None:
            self._stop.set()
            if hasattr(self.worker, "quit"):
                self.worker.quit()
            self.status.setText("Cancelling…")

    def _failed(self, label: str, exc: BaseException) -> None:
        from napari_pcim.explainers import Cancelled

        if isinstance(exc, Cancelled):
            self.status.setText(f"{label}: cancelled.")
        else:
            self._error(f"{label} failed: {exc}")

    def _error(self, msg: str) -> None:
        from napari.utils.notifications import show_error

        self.status.setText(msg)
        show_error(msg)

    def _add_result(self, ctx: RunContext, attribution: Any) -> list[Any]:
        """Add the attribution layers of a finished run, labelled with its captured well."""
        viewer = self.viewer
        method = METHOD_LABELS.get(ctx.method, ctx.method)
        classes = list(attribution.classes)
        probs = np.asarray(attribution.probabilities)[0]
        self.session.set_prediction(ctx.well, probs)
        layers = []
        for t, cls_index in enumerate(np.asarray(attribution.targets)[0]):
            cls = classes[int(cls_index)]
            amap = np.asarray(attribution.maps[0, t], dtype=np.float32)
            suffix = f"{cls} · {field_label(ctx.well, ctx.field)}"
            meta = {
                KIND: "attribution",
                "well": ctx.well,
                "field": ctx.field,
                "method": ctx.method,
                "options": _plain(dict(attribution.options)),
                "target": cls,
                "target_index": int(cls_index),
                "classes": classes,
                "probabilities": {c: float(p) for c, p in zip(classes, probs)},
                "model": str(ctx.classifier.path),
                "model_sha256": ctx.classifier.sha256,
                "timings": {k: float(v) for k, v in dict(attribution.timings).items()},
                "device": str(attribution.device),
                "plate": ctx.plate,
            }
            lo, hi = _map_limits(amap)
            name = f"{method} · {suffix}"
            self._remove_named(name)
            layer = viewer.add_image(
                amap, name=name, colormap=COLORMAPS[t % len(COLORMAPS)], blending="additive",
                opacity=0.7, contrast_limits=(lo, hi), scale=ctx.scale, translate=ctx.translate,
                metadata=meta,
            )
            self.session.add_layer(ctx.well, layer)
            layers.append(layer)
            if self.top_box.isChecked():
                top = _top_mask(amap, TOP_FRACTION)
                top_name = f"{method} top {TOP_FRACTION:.0%} · {suffix}"
                self._remove_named(top_name)
                top_layer = viewer.add_labels(
                    top, name=top_name, scale=ctx.scale, translate=ctx.translate, opacity=0.6,
                    metadata={**meta, KIND: "attribution_top", "top_fraction": TOP_FRACTION},
                )
                self.session.add_layer(ctx.well, top_layer)
                layers.append(top_layer)
        return layers

    def _remove_named(self, name: str) -> None:
        if name in self.viewer.layers:
            self.viewer.layers.remove(name)

    # -- whole plate ---------------------------------------------------------------------------
    def plate_wells(self) -> list[str]:
        s = self.session
        if s.plate is None:
            return []
        if self.scope_box.currentIndex() == 0:
            return list(s.plate.wells)
        chosen = [*s.pinned, *([s.well] if s.well else [])]
        return [w for w in s.plate.wells if w in chosen]

    def _ask_store(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self, "Result store (OME-Zarr folder)", self.store_edit.text(), "OME-Zarr (*.zarr)"
        )
        if path:
            self.store_edit.setText(path if path.endswith(".zarr") else f"{path}.zarr")

    def plate_job(self, wells: list[str]) -> BatchJob:
        """The whole-plate job of the current plate, model, method, target, seed and options."""
        from napari_pcim.batch import BatchJob

        s = self.session
        if s.plate is None or s.classifier is None:
            raise ValueError("open a plate and load a model before explaining the plate")
        options = self.form().values()
        if options.get("segmentation") == "labels":
            raise ValueError("RISE 'labels' segmentation is per field: use grid or slic for a plate run")
        return BatchJob(
            plate=str(s.plate.path), model=str(s.classifier.path), method=self.method,
            target=self.target_box.currentData() or "predicted", seed=self.seed_box.value(),
            device=s.device, options=_plain(options), wells=list(wells),
        )

    def store_path(self, job: BatchJob) -> Path:
        """Where ``job`` writes: the chosen folder, else one per plate/method/job in the cache."""
        from napari_pcim._napari.demo import cache_dir

        chosen = self.store_edit.text().strip()
        if chosen:
            return Path(chosen).expanduser()
        assert self.session.classifier is not None
        # The same plate and job always get the same store (so a rerun resumes it); another
        # model, target, seed or options get another one instead of a mismatch error.
        key = hashlib.sha256(
            f"{Path(job.plate).resolve()}|{job.fingerprint(self.session.classifier.sha256)}".encode()
        ).hexdigest()[:10]
        return cache_dir() / "results" / f"{Path(job.plate).stem}-{job.method}-{key}.zarr"

    def explain_plate(self, wells: list[str] | None = None) -> Any:
        """Explain every field of ``wells`` into a result store in a thread worker; returns it.

        The job (plate, model, options) and the store are fixed now: switching plates while
        it runs cannot mix results; a run over a plate no longer open only says where its
        store is. Cancel stops after the field in progress; complete fields stay in the store.
        """
        from napari.qt.threading import create_worker
        from napari.utils import progress

        s = self.session
        if self.worker is not None or s.plate is None or s.classifier is None:
            return None
        wells = self.plate_wells() if wells is None else list(wells)
        if not wells:
            self._error("no wells to explain: pick a well or choose 'all wells'")
            return None
        try:
            job = self.plate_job(wells)
        except ValueError as exc:
            self._error(str(exc))
            return None
        store = self.store_path(job)
        plate = s.plate
        label = f"{METHOD_LABELS[job.method]} · {len(wells)} wells"
        stop = threading.Event()
        pbar = progress(total=0, desc=label)
        worker = create_worker(
            _run_plate, job, store, ProgressRelay(pbar), stop.is_set,
            _start_thread=False, _ignore_errors=True,
        )
        reports: list[BatchReport] = []

        def _finished() -> None:
            self._finished(pbar)
            report = reports[0] if reports else None
            if report is None and not stop.is_set():
                return  # failed: the error is shown already
            if s.plate is not plate or not (store / ".zattrs").exists():
                self.status.setText(f"{label}: results in {store} (the plate changed meanwhile).")
                return
            s.set_results(ResultStore.open(store))
            n = len(s.results.records) if s.results is not None else 0
            if report is None or report.interrupted:
                self.status.setText(f"{label}: cancelled; {n} fields done are kept in {store} "
                                    "(Explain plate again resumes).")
            else:
                self.status.setText(f"{label}: done ({len(report.done)} fields now, "
                                    f"{len(report.skipped)} from an earlier run) in {store}.")

        worker.returned.connect(reports.append)
        worker.errored.connect(lambda exc: self._failed(label, exc))
        worker.finished.connect(_finished)
        self._start(worker, stop, f"{label}: running into {store}…")
        return worker


# -- worker bodies (run in a thread; no Qt here) ---------------------------------------------
def worker_threads() -> int:
    """torch intra-op threads while a worker computes: all cores but one for the GUI thread.

    ``$NAPARI_PCIM_WORKER_THREADS`` overrides it (``0`` keeps torch's own setting).
    With torch on every core the GUI thread competes with the pool and stalls.
    """
    env = os.environ.get("NAPARI_PCIM_WORKER_THREADS")
    if env is not None:
        return int(env)
    return max(1, (os.cpu_count() or 2) - 1)


@contextmanager
def _compute_threads() -> Iterator[None]:
    import torch

    wanted, before = worker_threads(), torch.get_num_threads()
    if wanted > 0:
        torch.set_num_threads(min(wanted, before))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _explain_field(ctx: RunContext, progress: Any, should_stop: Any) -> Any:
    from napari_pcim.explainers import explain

    with _compute_threads():
        return explain(
            ctx.classifier, ctx.data, method=ctx.method, target=ctx.target, device=ctx.device,
            progress=progress, should_stop=should_stop, plate_channels=ctx.channels,
            seed=ctx.seed, **ctx.options,
        )


def _run_plate(job: BatchJob, store: Path, progress: Any, should_stop: Any) -> BatchReport:
    from napari_pcim.batch import run_plate

    with _compute_threads():
        return run_plate(job, store, progress=progress, should_stop=should_stop)


# -- helpers ---------------------------------------------------------------------------------
def _map_limits(amap: np.ndarray) -> tuple[float, float]:
    """Contrast limits: 0 to the 99.5th percentile, so only positive evidence glows.

    Maps with no positive value (all ≤ 0) fall back to their own minimum.
    """
    finite = amap[np.isfinite(amap)]
    if finite.size == 0:
        return 0.0, 1.0
    lo = 0.0 if finite.max() > 0 else float(finite.min())
    hi = float(np.percentile(finite, 99.5))
    if hi <= lo:
        hi = float(finite.max()) if finite.max() > lo else lo + 1.0
    return lo, hi


def _top_mask(amap: np.ndarray, fraction: float) -> np.ndarray:
    """uint8 mask of the ``fraction`` highest-scoring pixels (positive values only)."""
    threshold = np.quantile(amap, 1.0 - fraction)
    return ((amap >= threshold) & (amap > 0)).astype(np.uint8)


def _plain(value: Any) -> Any:
    """A JSON-friendly copy of option values (arrays become a short description)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return f"array{value.shape}"
    if isinstance(value, np.generic):
        return value.item()
    return value


def _total_time(attribution: Any) -> float:
    timings = dict(attribution.timings)
    return float(timings.get("total", sum(float(v) for v in timings.values())))
