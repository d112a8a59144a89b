"""The Model dock widget: choose a TorchScript classifier, check it, predict.

A dropdown lists the bundled demo classifiers; "Browse…" picks any TorchScript
file carrying napari-pcim metadata, or a bioimage.io model package (a ``.zip`` or its
``rdf.yaml``). A TorchScript file without metadata opens a form
(:mod:`.model_form`) that writes its sidecar JSON and then loads it. Loading runs in a thread worker (the first
one imports torch). The widget shows the metadata (channels, classes, input
size, field mode, PixelCAM support), checks the model's channels against the
open plate with the core's message, offers the compute devices, and "Predict"
shows the class probabilities of the current field.

torch is only ever imported inside functions, never when napari loads the plugin.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qtpy.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from napari_pcim._napari.widgets.channel_map import ChannelMapWidget
from napari_pcim._napari.widgets.errors import report_failure
from napari_pcim._napari.widgets.session import get_session
from napari_pcim.vocabulary import field_label

if TYPE_CHECKING:
    import napari
    import numpy as np

    from napari_pcim.classifier import Classifier

_OK, _BAD = "#3fb950", "#f85149"


def describe(classifier: Classifier) -> str:
    """Rich-text summary of a classifier's metadata."""
    m = classifier.meta
    h, w = m.input_size
    rows = [
        ("file", f"{classifier.path.name} (sha256 {classifier.sha256[:12]}…)"),
        ("architecture", m.arch or "unknown"),
        ("channels", ", ".join(m.channels)),
        ("classes", ", ".join(m.classes)),
        ("input size", f"{h} × {w} px, field mode {m.field_mode}"
         + (f" (overlap {m.tile_overlap} px)" if m.field_mode == "tile" else "")),
        ("PixelCAM", "yes (has localize)" if m.has_localize else "no"),
    ]
    package = m.extra.get("bioimageio")
    if isinstance(package, dict):
        how = "in the model, per input" if package.get("normalised_in_module") else "fixed mean/std"
        rows.append(("bioimage.io", f"{package.get('name')}; preprocessing {how}"))
    if m.description:
        rows.append(("about", m.description))
    return "<br>".join(f"<b>{k}</b>: {html.escape(str(v))}" for k, v in rows)


class ModelWidget(QWidget):
    """Choose and check the classifier; see the module docstring."""

    def __init__(self, napari_viewer: napari.Viewer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        self.session = get_session(napari_viewer)

        self.model_box = QComboBox()
        self.model_box.setToolTip("Bundled demo classifiers")
        self.browse_btn = QPushButton("Browse…")
        self.load_btn = QPushButton("Load")
        self.meta_label = QLabel("No model loaded.")
        self.meta_label.setWordWrap(True)
        self.check_label = QLabel()
        self.check_label.setWordWrap(True)
        self.device_box = QComboBox()
        self.device_box.addItems(["auto", "cpu"])
        self.device_box.setToolTip("Where the classifier and the explainers run")
        self.predict_btn = QPushButton("Predict current field")
        self.predict_btn.setEnabled(False)
        self.proba_label = QLabel()
        self.proba_label.setWordWrap(True)
        self.form: QWidget | None = None  # the sidecar form, while one is open
        # plate channels -> model channels; shown when their names differ or a map is applied
        self.channel_map = ChannelMapWidget([], None, on_apply=self.session.set_plate)
        self.channel_map.setVisible(False)
        self._mapped_for: tuple[int, int] | None = None
        self.form_box = QVBoxLayout()

        pick = QHBoxLayout()
        pick.addWidget(self.model_box, 1)
        pick.addWidget(self.load_btn)
        pick.addWidget(self.browse_btn)
        form = QFormLayout()
        form.addRow("device", self.device_box)
        layout = QVBoxLayout(self)
        layout.addLayout(pick)
        layout.addWidget(self.meta_label)
        layout.addWidget(self.check_label)
        layout.addWidget(self.channel_map)
        layout.addLayout(self.form_box)
        layout.addLayout(form)
        layout.addWidget(self.predict_btn)
        layout.addWidget(self.proba_label)
        layout.addStretch(1)

        self._fill_bundled()
        self.load_btn.clicked.connect(lambda: self.load_model(self.model_box.currentData()))
        self.browse_btn.clicked.connect(self._browse)
        self.device_box.currentTextChanged.connect(self._device_changed)
        self.predict_btn.clicked.connect(lambda: self.predict())

        s = self.session
        s.classifier_changed.connect(self._on_classifier)
        s.plate_changed.connect(self._check)
        s.current_changed.connect(self._on_current)
        self.destroyed.connect(lambda *_: self._disconnect(s))
        if s.classifier is not None:
            self._on_classifier(s.classifier)

    def _disconnect(self, s: Any) -> None:
        s.classifier_changed.disconnect(self._on_classifier, missing_ok=True)
        s.plate_changed.disconnect(self._check, missing_ok=True)
        s.current_changed.disconnect(self._on_current, missing_ok=True)

    def _fill_bundled(self) -> None:
        # classifier.py imports torch: list the bundled files without importing it
        from importlib.resources import files

        root = Path(str(files("napari_pcim").joinpath("data", "models")))
        for p in sorted(root.glob("*.pt")) if root.is_dir() else []:
            self.model_box.addItem(p.stem, str(p))
        if self.model_box.count() == 0:
            self.model_box.addItem("(no bundled models)", None)
            self.load_btn.setEnabled(False)

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Open a classifier", "",
            "TorchScript (*.pt *.pth *.ts);;bioimage.io package (*.zip rdf.yaml *bioimageio.yaml);;All files (*)",
        )
        if path:
            self.load_model(path)

    # -- loading -------------------------------------------------------------------------------
    def load_model(self, path: str | Path | None) -> Any:
        """Load a classifier (a path, or a bundled model's name) in a thread worker."""
        if not path:
            return None
        from napari.qt.threading import create_worker

        self.load_btn.setEnabled(False)
        self.meta_label.setText(f"Loading {Path(path).name}…")
        worker = create_worker(_load, str(path), _start_thread=False, _ignore_errors=True)
        worker.returned.connect(self._loaded)
        worker.errored.connect(self._load_failed)
        worker.finished.connect(lambda: self.load_btn.setEnabled(True))
        worker.start()
        return worker

    def _loaded(self, result: tuple[Classifier, list[str]]) -> None:
        classifier, devices = result
        current = self.device_box.currentText()
        self.device_box.blockSignals(True)
        self.device_box.clear()
        self.device_box.addItems(devices)
        self.device_box.setCurrentText(current if current in devices else "auto")
        self.device_box.blockSignals(False)
        index = self.model_box.findData(str(classifier.path))
        if index >= 0:  # a bundled model: show its name in the dropdown
            self.model_box.setCurrentIndex(index)
        self._close_form()
        self.session.set_classifier(classifier)

    def _load_failed(self, exc: BaseException) -> None:
        from napari_pcim.classifier_meta import MissingMetadataError

        if isinstance(exc, MissingMetadataError):
            self.meta_label.setText("This TorchScript file has no napari-pcim metadata: describe it below.")
            self.open_form(exc.path, exc.sidecar)
            return
        msg = report_failure("loading the model", exc)
        self.meta_label.setText(f"<span style='color:{_BAD}'>{html.escape(msg)}</span>")

    def open_form(self, model: Path, sidecar: Path) -> QWidget:
        """Show the sidecar form for ``model`` (prefilled with the plate's channels); returns it."""
        from napari_pcim._napari.widgets.model_form import SidecarForm

        self._close_form()
        plate = self.session.plate
        self.form = SidecarForm(model, sidecar, lambda clf: self._loaded((clf, _devices())),
                                plate.channel_names if plate is not None else None)
        self.form_box.addWidget(self.form)
        return self.form

    def _close_form(self) -> None:
        if self.form is not None:
            self.form_box.removeWidget(self.form)
            self.form.deleteLater()
            self.form = None

    def _on_classifier(self, classifier: Classifier | None) -> None:
        self.meta_label.setText(describe(classifier) if classifier else "No model loaded.")
        self.proba_label.setText("")
        self._check()

    def _device_changed(self, name: str) -> None:
        self.session.device = name

    # -- checks --------------------------------------------------------------------------------
    def _check(self, *_: Any) -> bool:
        """Check the classifier's channels against the open plate; show the verdict."""
        clf, plate = self.session.classifier, self.session.plate
        ok = False
        if clf is None:
            self.check_label.setText("")
        elif plate is None:
            self.check_label.setText("Open a plate to check the model's channels against it.")
        else:
            from napari_pcim.classifier import ClassifierError

            try:
                idx = clf.channel_indices(plate.channel_names)
            except ClassifierError as exc:
                self.check_label.setText(f"<span style='color:{_BAD}'>✗ {html.escape(str(exc))}</span>")
            else:
                used = ", ".join(plate.channel_names[i] for i in idx)
                self.check_label.setText(
                    f"<span style='color:{_OK}'>✓ the plate has the model's channels ({used})</span>"
                )
                ok = True
        self._show_channel_map(ok)
        self.predict_btn.setEnabled(ok and self.session.current_view() is not None)
        return ok

    def _show_channel_map(self, ok: bool) -> None:
        """Offer the channel map when the plate lacks the model's channel names (or has a map)."""
        clf, plate = self.session.classifier, self.session.plate
        show = clf is not None and plate is not None and (not ok or bool(plate.channel_map))
        if show and self._mapped_for != (id(clf), id(plate)):
            self._mapped_for = (id(clf), id(plate))
            self.channel_map.set_channels(clf.meta.channels, plate)
        self.channel_map.setVisible(show)

    def _on_current(self, well: str, field: int) -> None:
        self._check()
        probs = self.session.predictions.get(well)
        self.proba_label.setText("" if probs is None else self._proba_text(well, field, probs))

    # -- prediction ----------------------------------------------------------------------------
    def predict(self) -> Any:
        """Predict the current field in a thread worker; returns the worker."""
        s = self.session
        view, clf, plate = s.current_view(), s.classifier, s.plate
        if view is None or clf is None or plate is None or not self._check():
            return None
        from napari.qt.threading import create_worker

        well, field = view.well, view.field
        worker = create_worker(
            _predict, clf, view.data, list(plate.channel_names), s.device,
            _start_thread=False, _ignore_errors=True,
        )
        self.predict_btn.setEnabled(False)

        def _done(probs: np.ndarray) -> None:
            s.set_prediction(well, probs)
            self.proba_label.setText(self._proba_text(well, field, probs))

        def _failed(exc: BaseException) -> None:
            report_failure(f"prediction for {field_label(well, field)}", exc)

        worker.returned.connect(_done)
        worker.errored.connect(_failed)
        worker.finished.connect(self._check)
        worker.start()
        return worker

    def _proba_text(self, well: str, field: int, probs: np.ndarray) -> str:
        clf = self.session.classifier
        classes = clf.meta.classes if clf is not None else [str(i) for i in range(len(probs))]
        best = int(probs.argmax())
        lines = [f"<b>{field_label(well, field)}</b>: predicted <b>{html.escape(classes[best])}</b>"]
        for name, p in zip(classes, probs):
            bar = "█" * round(float(p) * 20)
            lines.append(f"<tt>{html.escape(name):>10} {float(p):5.3f} {bar}</tt>")
        return "<br>".join(lines)


def _load(path: str) -> tuple[Classifier, list[str]]:
    """Worker body: load the classifier (a file, or a bundled model's name); list the devices."""
    from napari_pcim.classifier import load_classifier, resolve_model_path
    from napari_pcim.devices import available_devices

    return load_classifier(resolve_model_path(path)), available_devices()


def _devices() -> list[str]:
    from napari_pcim.devices import available_devices

    return available_devices()


def _predict(clf: Classifier, data: np.ndarray, channels: list[str], device: str) -> np.ndarray:
    """Worker body: class probabilities (K,) of one raw field."""
    clf.to(device)
    return clf.predict_proba(data, plate_channels=channels)[0]
