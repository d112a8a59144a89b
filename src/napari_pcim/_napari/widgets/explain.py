"""The Explain dock widget: attribution maps of the current field, or of a whole plate.

Choose a method (the explainer registry's product methods, then the captum methods to
compare against; a method that cannot explain the loaded classifier is greyed out,
with the registry's reason as its tooltip and note), a target (the predicted class,
one class, or all) and the options (a form generated from the method's options
dataclass, see :mod:`.options`), then Run. :meth:`ExplainWidget.current_options` is
exactly what Run (and "Explain plate") passes to ``explain()`` (a model's recommended
options prefill the form); a bad value is refused before the run with a one-line
notification. "per channel" (a run setting
like target and seed, not a method option) asks for per-channel attribution, see
:class:`~.channels.ChannelPanel`. The job runs in a napari thread worker; its
progress shows in the dock itself (a bar with the time left, :class:`~.qt.DockProgress`)
and in napari's activity dock, and Cancel stops it without adding anything.
Everything the result needs (well, field, raw data, scale, offset, model, options)
is captured when Run is pressed, so switching wells meanwhile cannot mislabel the result.

Each map becomes an image layer named like ``"PCIM · treated · B03 f0"``
(:func:`napari_pcim.layers.result_layer_data`: method, options, target, probabilities,
model hash, timings, well and field in its ``metadata``; the method's contrast range is
shared across the session, ``Session.scales``); "top 5 %" adds a Labels layer of the
top pixels. Per-channel maps are kept in ``Session.channel_maps`` (for the Cells dock).
"Whole plate" is :class:`~.explain_plate.PlatePanel`; under the status a line says what
the active map's colourbar spans (:func:`.readout.scale_caption`).
"""

from __future__ import annotations

import dataclasses
import threading
from typing import TYPE_CHECKING, Any

from qtpy.QtCore import QObject, Qt, Signal
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from napari_pcim._napari.widgets.channels import ChannelPanel
from napari_pcim._napari.widgets.errors import report_failure
from napari_pcim._napari.widgets.explain_plate import PlatePanel
from napari_pcim._napari.widgets.options import OptionsForm, recommend_for
from napari_pcim._napari.widgets.qt import DockProgress, ProgressRelay
from napari_pcim._napari.widgets.readout import scale_caption
from napari_pcim._napari.widgets.session import get_session
from napari_pcim._napari.widgets.workers import RunContext, estimate_seconds, explain_field
from napari_pcim.layers import KIND, TOP_FRACTION, result_layer_data
from napari_pcim.vocabulary import field_label

if TYPE_CHECKING:
    import napari
    from napari.layers import Layer

    from napari_pcim.classifier import Classifier
    from napari_pcim.explainers import Attribution


class _EstimateSignal(QObject):
    """Carries an estimate from its computing thread to the GUI thread."""

    ready = Signal(object, object)  # (request key, (typical, most) seconds or None)


def offered_methods() -> tuple[str, ...]:
    """The methods of the dropdown, in order: product methods, then comparison methods."""
    from napari_pcim.explainers import COMPARISON_METHODS, METHODS

    return (*METHODS, *COMPARISON_METHODS)


class ExplainWidget(QWidget):
    """Run explainers on the current field or the plate; see the module docstring."""

    def __init__(self, napari_viewer: napari.Viewer, parent: QWidget | None = None) -> None:
        from napari_pcim.explainers import COMPARISON_METHODS, method_label

        super().__init__(parent)
        self.viewer = napari_viewer
        self.session = get_session(napari_viewer)
        self.worker: Any = None
        self._stop: threading.Event | None = None
        self._forms: dict[str, OptionsForm] = {}

        self.method_box = QComboBox()
        for name in offered_methods():
            if COMPARISON_METHODS and name == COMPARISON_METHODS[0]:
                self.method_box.insertSeparator(self.method_box.count())
            self.method_box.addItem(method_label(name), name)
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
        self.estimate = QLabel()  # "about 40 s on this machine", from the cost model
        self.estimate.setWordWrap(True)
        self._estimate_key: Any = None
        self.estimate_seconds: tuple[float, float] | None = None  # (typical, most) of the last estimate
        self._estimate_signal = _EstimateSignal()
        self._estimate_signal.ready.connect(self._show_estimate)
        self.status = QLabel("Load a plate, a well and a model first.")
        self.status.setWordWrap(True)
        self.progress = DockProgress()
        self.scale_note = QLabel()  # what the active map's colourbar spans, in words
        self.scale_note.setWordWrap(True)
        self.channel_panel = ChannelPanel(self.session)
        self.plate_panel = PlatePanel(self)

        form = QFormLayout()
        form.addRow("method", self.method_box)
        form.addRow("", self.method_note)
        form.addRow("target", self.target_box)
        form.addRow("seed", self.seed_box)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_btn)
        buttons.addWidget(self.cancel_btn)
        body = QWidget()  # scrolls when it grows (chart, status) past the window's height
        layout = QVBoxLayout(body)
        layout.addLayout(form)
        layout.addLayout(self.options_holder)
        layout.addWidget(self.top_box)
        layout.addWidget(self.channel_panel)
        layout.addWidget(self.estimate)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.plate_panel)
        layout.addWidget(self.status)
        layout.addWidget(self.scale_note)
        layout.addStretch(1)
        scroll = QScrollArea(widgetResizable=True, frameShape=QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidget(body)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(scroll)
        self.setMinimumWidth(body.minimumSizeHint().width() + scroll.verticalScrollBar().sizeHint().width())

        self.method_box.currentIndexChanged.connect(lambda _: self._show_options())
        self.run_btn.clicked.connect(lambda: self.run())
        self.cancel_btn.clicked.connect(self.cancel)

        s = self.session
        s.classifier_changed.connect(self._on_classifier)
        s.current_changed.connect(self._update_enabled)
        s.plate_changed.connect(self._update_enabled)
        s.current_changed.connect(self.update_estimate)
        active = napari_viewer.layers.selection.events.active
        active.connect(self._show_scale)
        self.destroyed.connect(lambda *_: active.disconnect(self._show_scale))
        self.destroyed.connect(lambda *_: self._disconnect(s))
        self._on_classifier(s.classifier)

    def _disconnect(self, s: Any) -> None:
        s.classifier_changed.disconnect(self._on_classifier, missing_ok=True)
        s.current_changed.disconnect(self._update_enabled, missing_ok=True)
        s.plate_changed.disconnect(self._update_enabled, missing_ok=True)
        s.current_changed.disconnect(self.update_estimate, missing_ok=True)

    def _show_scale(self, *_: Any) -> None:
        self.scale_note.setText(scale_caption(self.viewer.layers.selection.active))

    # -- form ----------------------------------------------------------------------------------
    @property
    def method(self) -> str:
        """The selected method's registry name."""
        return self.method_box.currentData()

    @property
    def target(self) -> Any:
        """The selected target: "predicted", "all" or a class name."""
        return self.target_box.currentData() or "predicted"

    def set_method(self, method: str) -> None:
        """Select ``method`` (a registry name offered by the dropdown)."""
        index = self.method_box.findData(method)
        if index < 0:
            raise ValueError(f"the Explain widget offers no method {method!r}")
        self.method_box.setCurrentIndex(index)

    def form(self, method: str | None = None) -> OptionsForm:
        """The options form of ``method`` (default: the selected one), built on first use."""
        from napari_pcim.explainers import options_class

        method = method or self.method
        if method not in self._forms:
            form = self._forms[method] = OptionsForm(method, options_class(method))
            self.options_holder.addWidget(form)
            for editor in form.editors.values():
                editor.changed.connect(lambda *_: self.update_estimate())
            recommend_for(form, self.session.classifier)  # a bad one was reported with the model
        return self._forms[method]

    def current_options(self) -> dict[str, Any]:
        """The options Run passes to ``explain()`` for the selected method, validated.

        The form's values, plus the label image of the current well as ``regions`` when
        the method's options take one and ask for label regions (RISE's
        ``segmentation="labels"``). ValueError names a bad value.
        """
        from napari_pcim.explainers import method_label, options_class
        from napari_pcim.explainers.options import validate_options

        method = self.method
        values = self.form(method).values()
        cls = options_class(method)
        names = {f.name for f in dataclasses.fields(cls)}
        wants_labels = values.get("segmentation") == "labels"
        if "regions" in names and "regions" not in values and wants_labels:
            values["regions"] = self._label_regions()
        validate_options(cls(**values), method_label(method))
        return values

    def _label_regions(self) -> Any:
        view = self.session.current_view()
        if view is None:
            raise ValueError("label regions need a loaded well: click a well first")
        regions = view.labels.get("cells", view.labels.get("nuclei"))
        if regions is None:
            raise ValueError(
                f"label regions need a cells or nuclei label image; well {view.well} has "
                f"{sorted(view.labels) or 'none'}"
            )
        return regions

    def _show_options(self) -> None:
        current = self.form()
        for form in self._forms.values():
            form.setVisible(form is current)
        self._update_enabled()
        self.update_estimate()

    # -- time estimate ---------------------------------------------------------------------------
    def update_estimate(self, *_: Any) -> None:
        """Estimate the current field's run time from the cost model, off the GUI thread.

        The first estimate for a model, device and thread count times a short batch-size
        sweep (:mod:`napari_pcim.explainers.batching`, cached, reused by the run); the
        result arrives through a signal and fills :attr:`estimate`.
        """
        s = self.session
        view, clf = s.current_view(), s.classifier
        try:
            options = self.form().values() if view is not None and clf is not None else None
        except ValueError:
            options = None
        if options is None:
            self._estimate_key = self.estimate_seconds = None
            self.estimate.setText("")
            return
        shape = tuple(int(v) for v in view.data.shape[-2:])
        key = (id(clf), s.device, self.method, repr(sorted(options.items())), shape)
        if key == self._estimate_key:
            return
        self._estimate_key, self.estimate_seconds = key, None
        self.estimate.setText("Estimate: measuring this machine…")
        signal, method = self._estimate_signal, self.method

        def work() -> None:
            try:
                result = estimate_seconds(clf, s.device, method, options, shape)
            except Exception:  # noqa: BLE001 - an estimate never breaks the dock
                result = None
            try:
                signal.ready.emit(key, result)
            except RuntimeError:  # the dock was closed meanwhile
                pass

        threading.Thread(target=work, name="napari-pcim estimate", daemon=True).start()

    def _show_estimate(self, key: Any, result: Any) -> None:
        if key != self._estimate_key:
            return  # a newer request is on its way
        self.estimate_seconds = result
        if result is None:
            self.estimate.setText("Estimate: not available for this method.")
        else:
            from napari_pcim.explainers.batching import estimate_text

            self.estimate.setText(f"Estimate: {estimate_text(*result)}.")

    def _on_classifier(self, classifier: Classifier | None) -> None:
        from napari_pcim.explainers import method_label, unavailable_reason

        self.target_box.clear()
        self.target_box.addItem("predicted class", "predicted")
        for name in classifier.meta.classes if classifier else ():
            self.target_box.addItem(name, name)
        self.target_box.addItem("all classes", "all")
        unusable = {}
        for name in offered_methods():
            reason = unavailable_reason(name, classifier) if classifier is not None else ""
            item = self.method_box.model().item(self.method_box.findData(name))
            item.setEnabled(not reason)
            item.setToolTip(reason)
            if reason:
                unusable[method_label(name)] = reason
        # One short line; the reasons are in its tooltip and on each greyed-out item.
        self.method_note.setText(
            f"not for this model: {', '.join(unusable)} (hover for why)" if unusable else ""
        )
        self.method_note.setToolTip("\n\n".join(f"{k}: {v}" for k, v in unusable.items()))
        self.method_note.setVisible(bool(unusable))
        if not self.method_box.model().item(self.method_box.currentIndex()).isEnabled():
            self.set_method(offered_methods()[0])
        bad = [r for r in (recommend_for(f, classifier) for f in self._forms.values()) if r]
        if bad:
            report_failure("Reading the model's recommended options", ValueError(bad[0]))
        self._show_options()

    def _update_enabled(self, *_: Any, hint: bool = True) -> None:
        """Enable the buttons that can act now; with ``hint``, say in the status what is missing."""
        s = self.session
        busy = self.worker is not None
        ready = s.classifier is not None and s.current_view() is not None
        self.run_btn.setEnabled(ready and not busy)
        self.plate_panel.plate_btn.setEnabled(s.classifier is not None and s.plate is not None and not busy)
        self.cancel_btn.setEnabled(busy)
        if hint and not busy:
            if s.plate is None:
                self.status.setText("Open a plate first (Plate widget).")
            elif s.classifier is None:
                self.status.setText("Load a model first (Model widget).")
            elif s.current_view() is None:
                self.status.setText("Click a well to load it.")

    # -- single field --------------------------------------------------------------------------
    def _capture(self) -> RunContext:
        options = self.current_options()  # a bad option is named before anything else
        s = self.session
        view, clf, plate = s.current_view(), s.classifier, s.plate
        if view is None or clf is None or plate is None:
            raise ValueError("open a plate, load a well and a model before explaining")
        first = view.layers[0] if view.layers else None
        return RunContext(
            well=view.well, field=view.field, data=view.data, channels=list(plate.channel_names),
            scale=view.scale,
            translate=tuple(first.translate[-2:]) if first is not None else (0.0, 0.0),
            classifier=clf, device=s.device, method=self.method, target=self.target,
            seed=self.seed_box.value(), options=options, plate=str(plate.path),
            per_channel=self.channel_panel.per_channel,
        )

    def run(self) -> Any:
        """Explain the current field in a thread worker; returns the worker (or None)."""
        from napari.qt.threading import create_worker
        from napari.utils import progress

        from napari_pcim.explainers import method_label

        if self.worker is not None:
            return None
        try:
            ctx = self._capture()
        except ValueError as exc:
            self.error(str(exc))
            return None
        label = f"{method_label(ctx.method)} · {field_label(ctx.well, ctx.field)}"
        stop = threading.Event()
        pbar = progress(total=0, desc=label)
        worker = create_worker(
            explain_field, ctx, ProgressRelay(pbar, self.progress), stop.is_set,
            _start_thread=False, _ignore_errors=True,
        )

        def _done(attribution: Attribution) -> None:
            if not stop.is_set():
                self._add_result(ctx, attribution)
                total = float(dict(attribution.timings)["total"])
                self.status.setText(f"{label}: done in {total:.1f} s.")

        worker.returned.connect(_done)
        worker.errored.connect(lambda exc: self.failed(label, exc))
        worker.finished.connect(lambda: self.finished(pbar))
        self.start(worker, stop, f"{label}: running…")
        return worker

    def start(self, worker: Any, stop: threading.Event, text: str) -> None:
        """Make ``worker`` the running job (one at a time) and start it."""
        self.worker, self._stop = worker, stop
        self.status.setText(text)
        self.progress.start()
        self._update_enabled()
        worker.start()

    def finished(self, pbar: Any) -> None:
        """The running job ended (done, failed or cancelled)."""
        pbar.close()
        self.progress.finish(cancelled=self._stop is not None and self._stop.is_set())
        self.worker, self._stop = None, None
        self._update_enabled(hint=False)  # keep the job's outcome in the status

    def cancel(self) -> None:
        """Stop the running job; nothing it computed is added."""
        if self._stop is not None:
            self._stop.set()
            self.status.setText("Cancelling…")

    def failed(self, label: str, exc: BaseException) -> None:
        """Report a job's error as a notification (see :mod:`.errors`), or its cancellation."""
        from napari_pcim.explainers import Cancelled

        if isinstance(exc, Cancelled):
            self.status.setText(f"{label}: cancelled.")
        else:
            self.status.setText(report_failure(label, exc))

    def error(self, msg: str) -> None:
        """Show ``msg`` in the status line and as a napari notification."""
        from napari.utils.notifications import show_error

        self.status.setText(msg)
        show_error(msg)

    def _add_result(self, ctx: RunContext, attribution: Attribution) -> list[Layer]:
        """Add the attribution layers of a finished run, labelled with its captured well."""
        from napari_pcim.explainers import method_label

        self.session.set_prediction(ctx.well, attribution.probabilities[0])
        layer_data = result_layer_data(
            attribution, label=method_label(ctx.method), well=ctx.well, field=ctx.field,
            scale=ctx.scale, translate=ctx.translate,
            metadata={"model": str(ctx.classifier.path), "model_sha256": ctx.classifier.sha256,
                      "plate": ctx.plate},
            top_fraction=TOP_FRACTION if self.top_box.isChecked() else None,
            scales=self.session.scales,
        )
        added = self.session.add_layers(ctx.well, layer_data)
        maps = [layer for layer in added if layer.metadata.get(KIND) == "attribution"]
        if attribution.channel_maps is not None:
            for t, layer in enumerate(maps):
                self.session.channel_maps[layer] = dict(
                    zip(attribution.channel_names or (), attribution.channel_maps[0, t])
                )
            self.channel_panel.show_result(ctx, attribution)
        self._show_scale()  # the shared scale may have moved
        return added
