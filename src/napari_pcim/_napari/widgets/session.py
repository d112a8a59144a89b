"""The per-viewer session shared by the napari-pcim dock widgets.

Each napari viewer gets one :class:`Session` (see :func:`get_session`). It holds
what the widgets must agree on: the open :class:`~napari_pcim.plate_io.Plate`, the
current :class:`~napari_pcim.classifier.Classifier` and device, the current
well/field, the pinned wells, the wells shown in the viewer with their raw data,
the per-well predictions and scores found so far, and the whole-plate result store
being browsed (:class:`napari_pcim.batch.ResultStore`, written by
:func:`napari_pcim.batch.run_plate`).
Widgets listen to its psygnal signals instead of talking to each other, so docking
any subset works.

Well loading lives here too (every widget may ask for a well): the plate is read
in a napari thread worker, then the layers built by
:func:`napari_pcim.layers.field_layer_data` (one image per channel, the label
images) are added in the main thread. The layers of the previous well are
removed unless that well is pinned; pinned wells are laid side by side by
translating their layers.

Layers created by napari-pcim are built by :mod:`napari_pcim.layers` and carry
``metadata[KIND]`` (``"channel"``, ``"labels"``, ``"attribution"``,
``"attribution_channel"``, ``"attribution_top"``, ``"cell_share"``) plus ``"well"``
and ``"field"``, which is how the session, the Evaluate/Export widgets and the writer
find them. Attribution layers of one method share one contrast range
(:class:`napari_pcim.layers.ContrastScales`, reset with the plate): each new map of a
method restyles the method's layers already shown, compare tiles included
(:meth:`Session.restyle`). Each viewer's session also installs :mod:`.readout`.
"""

from __future__ import annotations

import json
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field as dc_field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from psygnal import Signal

from napari_pcim._napari.widgets.errors import report_failure
from napari_pcim._napari.widgets.readout import install as install_readout
from napari_pcim.layers import KIND, ContrastScales, LayerDataTuple, field_layer_data, style_label_layer

if TYPE_CHECKING:
    import napari
    from napari.layers import Layer

    from napari_pcim.batch import ResultStore
    from napari_pcim.classifier import Classifier
    from napari_pcim.plate_io import Plate

_GAP_FRACTION = 0.05  # gap between side-by-side wells, as a fraction of the field width
_MAP_KINDS = ("attribution", "attribution_channel", "compare_tile")


def layer_kind(layer: Layer) -> str | None:
    """What a napari-pcim layer is (``metadata[KIND]``), None for other layers."""
    return layer.metadata.get(KIND) if isinstance(layer.metadata, dict) else None


@dataclass
class WellView:
    """A well/field shown in the viewer: its raw data, labels and napari layers."""

    well: str
    field: int
    data: np.ndarray  # raw (C, Y, X)
    labels: dict[str, np.ndarray]
    scale: tuple[float, float]
    layers: list[Layer] = dc_field(default_factory=list)


class Session:
    """State shared by the widgets of one viewer (see the module docstring)."""

    plate_changed = Signal(object)  # Plate | None
    classifier_changed = Signal(object)  # Classifier | None
    current_changed = Signal(str, int)  # well, field: emitted once the well's layers are shown
    loading_failed = Signal(str)  # message
    pins_changed = Signal()
    predictions_changed = Signal()  # predictions or scores changed
    results_changed = Signal(object)  # ResultStore | None

    def __init__(self, viewer: napari.Viewer) -> None:
        self._viewer_ref = weakref.ref(viewer)
        self.plate: Plate | None = None
        self.phenotype: str | None = None  # e.g. "foci" for synthetic plates, else None
        self.classifier: Classifier | None = None
        self.device: str = "auto"
        self.well: str | None = None
        self.field: int = 0
        self.pinned: list[str] = []
        self.views: dict[str, WellView] = {}
        self.predictions: dict[str, np.ndarray] = {}  # well -> class probabilities (K,)
        self.scores: dict[str, float] = {}  # well -> relevance mass inside the ground truth
        self.results: ResultStore | None = None  # the result store being browsed
        self.scales = ContrastScales()  # one contrast range per method
        # attribution layer -> {channel: (Y, X) map} of a per-channel run
        self.channel_maps: weakref.WeakKeyDictionary[Layer, dict[str, np.ndarray]] = (
            weakref.WeakKeyDictionary()
        )
        self._load_token = 0
        self._loading: str | None = None  # the well being read, until its layers are shown
        self._load_worker: Any = None

    @property
    def viewer(self) -> napari.Viewer:
        viewer = self._viewer_ref()
        if viewer is None:
            raise RuntimeError("the napari viewer of this session was closed")
        return viewer

    # -- plate and model -----------------------------------------------------------------------
    def set_plate(self, plate: Plate | None) -> None:
        """Make ``plate`` the open plate; removes the layers of the previous one."""
        for well in list(self.views):
            self._remove_view(well)
        self.plate = plate
        self.phenotype = plate_phenotype(plate) if plate is not None else None
        self.well, self.field = None, 0
        self.pinned = []
        self.predictions, self.scores = {}, {}
        self.results = None
        self.scales = ContrastScales()
        self.plate_changed.emit(plate)
        self.results_changed.emit(None)

    def set_classifier(self, classifier: Classifier | None) -> None:
        self.classifier = classifier
        self.predictions, self.scores = {}, {}
        if self.results is not None:  # stored results stay valid whatever model is loaded
            self.predictions, self.scores = self.results.per_well()
        self.classifier_changed.emit(classifier)
        self.predictions_changed.emit()

    def set_results(self, results: ResultStore | None) -> None:
        """Browse ``results`` (a store of the open plate): its per-well values colour the map."""
        self.results = results
        if results is not None:
            probs, scores = results.per_well()
            self.predictions.update(probs)
            self.scores.update(scores)
        self.results_changed.emit(results)
        self.predictions_changed.emit()

    def class_names(self) -> list[str]:
        """Class names of the loaded classifier, else of the open result store."""
        if self.classifier is not None:
            return list(self.classifier.meta.classes)
        return self.results.classes if self.results is not None else []

    def set_prediction(self, well: str, probabilities: np.ndarray) -> None:
        self.predictions[well] = np.asarray(probabilities, dtype=float)
        self.predictions_changed.emit()

    # -- wells ---------------------------------------------------------------------------------
    def current_view(self) -> WellView | None:
        return self.views.get(self.well) if self.well is not None else None

    def load_well(
        self, well: str, field: int = 0, *, on_done: Callable[[], None] | None = None
    ) -> Any:
        """Show ``well``/``field``: read it in a thread worker, then add its layers.

        Returns the worker (or ``None`` when the well is already shown). A newer
        request supersedes an older one still reading. ``on_done`` runs after the
        layers are added.
        """
        plate = self._require_plate()
        if well not in plate.wells:
            raise ValueError(f"{plate.path}: well {well!r} has no images; wells: {plate.wells[:8]}…")
        n = plate.n_fields(well)
        if not 0 <= field < n:
            raise ValueError(
                f"{plate.path}: well {well} has {n} field(s) (0-based), no field {field}"
            )
        view = self.views.get(well)
        if view is not None and view.field == field:
            self._make_current(well, field)
            if on_done is not None:
                on_done()
            return None
        from napari.qt.threading import create_worker

        self._load_token += 1
        token = self._load_token
        self._loading = well
        worker = create_worker(
            _read_well, plate, well, field, _start_thread=False, _ignore_errors=True
        )

        def _shown(result: tuple[np.ndarray, dict[str, np.ndarray]]) -> None:
            if token != self._load_token or self.plate is not plate:
                return  # superseded by a newer click, or the plate changed meanwhile
            self._loading = None
            self._show(well, field, *result)
            if on_done is not None:
                on_done()

        worker.returned.connect(_shown)
        worker.errored.connect(lambda exc: self._load_error(well, exc))
        self._load_worker = worker
        worker.start()
        return worker

    def _load_error(self, well: str, exc: BaseException) -> None:
        if self._loading == well:
            self._loading = None
        self.loading_failed.emit(report_failure(f"loading well {well}", exc))

    def _require_plate(self) -> Plate:
        if self.plate is None:
            raise ValueError("no plate is open: open a plate (or the demo plate) first")
        return self.plate

    def _show(self, well: str, field: int, data: np.ndarray, labels: dict[str, np.ndarray]) -> None:
        plate = self._require_plate()
        # Layers of replaced wells are recycled (new data, same layer) rather than removed and
        # re-added: napari runs a full garbage collection per removed layer, which stalls.
        spare: dict[tuple[str, str], Layer] = {}
        for other in list(self.views):
            if other == well or other not in self.pinned:
                for layer in self.views.pop(other).layers:
                    key = _recycle_key(layer)
                    if key is not None and key not in spare:
                        spare[key] = layer
                    else:
                        self._remove_layer(layer)
        tuples = field_layer_data(
            data, labels, plate.channel_names, plate.pixel_size, well, field,
            phenotype=self.phenotype, source=str(plate.path),
        )
        scale = (1.0, 1.0) if plate.pixel_size is None else tuple(float(s) for s in plate.pixel_size)
        view = WellView(well, field, data, labels, scale)
        viewer = self.viewer
        for layer_data, kwargs, layer_type in tuples:
            layer = spare.pop((layer_type, _recycle_name(kwargs["metadata"])), None)
            if layer is not None and layer.data.shape == layer_data.shape:
                _refill(layer, layer_data, kwargs)
            else:
                if layer is not None:
                    self._remove_layer(layer)
                layer = getattr(viewer, f"add_{layer_type}")(layer_data, **kwargs)
                style_label_layer(layer)
            view.layers.append(layer)
        for layer in spare.values():
            self._remove_layer(layer)
        self.views[well] = view
        self._layout()
        if len(self.views) == 1 and len(view.layers) == len(viewer.layers):
            viewer.reset_view()
        self._make_current(well, field)

    def _remove_layer(self, layer: Layer) -> None:
        viewer = self._viewer_ref()
        if viewer is not None and layer in viewer.layers:
            viewer.layers.remove(layer)

    def _make_current(self, well: str, field: int) -> None:
        self.well, self.field = well, field
        self.current_changed.emit(well, field)

    def _remove_view(self, well: str) -> None:
        view = self.views.pop(well, None)
        for layer in view.layers if view is not None else ():
            self._remove_layer(layer)

    def add_layers(self, well: str, layer_data: list[LayerDataTuple]) -> list[Layer]:
        """Add layers (attribution maps from :mod:`napari_pcim.layers`) to a shown well.

        A layer of the same name is replaced. The layers are aligned with the well; those
        of a well about to be replaced (another unpinned well is loading) are not attached
        to it: they stay in the viewer until deleted, so a result that arrives while the
        user moves on is never dropped with its well.
        """
        viewer = self.viewer
        added = []
        for data, kwargs, layer_type in layer_data:
            if kwargs["name"] in viewer.layers:
                viewer.layers.remove(kwargs["name"])
            added.append(getattr(viewer, f"add_{layer_type}")(data, **kwargs))
        view = self.views.get(well)
        leaving = self._loading not in (None, well) and well not in self.pinned
        if view is not None and not leaving:
            view.layers.extend(added)
            self._layout()
        for method in {layer.metadata.get("method") for layer in added
                       if layer_kind(layer) in _MAP_KINDS}:
            self.restyle(method)
        return added

    def restyle(self, method: str) -> None:
        """Give every shown map layer of ``method`` the method's current shared contrast."""
        for layer in self.viewer.layers:
            meta = layer.metadata
            if layer_kind(layer) not in _MAP_KINDS or meta.get("method") != method:
                continue
            own_sign = layer_kind(layer) == "attribution_channel" and meta["contrast"]["signed"]
            style = self.scales.style(method, meta.get("label", method), signed=own_sign)
            layer.colormap = style["colormap"]
            lo, hi = style["contrast_limits"]
            data_lo, data_hi = float(np.min(layer.data)), float(np.max(layer.data))
            layer.contrast_limits_range = (min(lo, data_lo), max(hi, data_hi))
            layer.contrast_limits = (lo, hi)
            meta["contrast"] = style["contrast"]

    def toggle_pin(self, well: str) -> bool:
        """Pin or unpin ``well``; returns whether it is pinned now."""
        if well in self.pinned:
            self.pinned.remove(well)
            if well != self.well:
                self._remove_view(well)
            pinned = False
        else:
            self.pinned.append(well)
            pinned = True
        self._layout()
        self.pins_changed.emit()
        return pinned

    def _layout(self) -> None:
        """Translate each shown well's layers to its own slot, left to right."""
        order = [w for w in self.pinned if w in self.views]
        order += [w for w in self.views if w not in order]
        for slot, well in enumerate(order):
            view = self.views[well]
            width = view.data.shape[-1] * view.scale[1]
            dx = slot * width * (1 + _GAP_FRACTION)
            for layer in view.layers:
                layer.translate = (0.0, dx)

    def well_layers(self, well: str | None = None) -> list[Layer]:
        """napari-pcim layers of ``well`` (default: the current one) still in the viewer."""
        well = self.well if well is None else well
        viewer = self.viewer
        return [
            layer for layer in viewer.layers
            if layer_kind(layer) is not None and layer.metadata.get("well") == well
        ]


def _recycle_name(meta: dict[str, Any]) -> str:
    return str(meta.get("channel") or meta.get("label") or "")


def _recycle_key(layer: Layer) -> tuple[str, str] | None:
    """``("image", "DAPI")`` for a well's channel/label layer, None for other layers."""
    kind = layer_kind(layer)
    if kind == "channel":
        return "image", _recycle_name(layer.metadata)
    if kind == "labels":
        return "labels", _recycle_name(layer.metadata)
    return None


def _refill(layer: Layer, data: np.ndarray, kwargs: dict[str, Any]) -> None:
    """Give a recycled layer the data, name, metadata and contrast of another well."""
    layer.metadata = kwargs["metadata"]
    layer.name = kwargs["name"]
    layer.data = data
    if "contrast_limits" in kwargs:
        lo, hi = kwargs["contrast_limits"]
        layer.contrast_limits_range = (min(float(data.min()), lo), max(float(data.max()), hi))
        layer.contrast_limits = (lo, hi)
    layer.scale = kwargs["scale"]


def plate_phenotype(plate: Plate) -> str | None:
    """The phenotype a synthetic plate was generated with (from its zarr attributes)."""
    path = Path(plate.path)
    for name in (".zattrs", "zarr.json"):
        attrs_file = path / name
        if attrs_file.is_file():
            try:
                attrs = json.loads(attrs_file.read_text())
            except (OSError, ValueError):
                return None
            attrs = attrs.get("attributes", attrs)  # zarr v3 nests them
            value = attrs.get("napari_pcim", {}).get("phenotype")
            return value if isinstance(value, str) else None
    return None


def _read_well(plate: Plate, well: str, field: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Worker body: read one field and its labels from disk."""
    data = np.asarray(plate.read_field(well, field))
    labels = {k: np.asarray(v) for k, v in plate.read_labels(well, field).items()}
    return data, labels


_SESSIONS: weakref.WeakKeyDictionary[Any, Session] = weakref.WeakKeyDictionary()


def get_session(viewer: napari.Viewer) -> Session:
    """The session of ``viewer``, created on first use."""
    session = _SESSIONS.get(viewer)
    if session is None:
        session = _SESSIONS[viewer] = Session(viewer)
        install_readout(viewer)  # colourbar and readable status of attribution layers
    return session
