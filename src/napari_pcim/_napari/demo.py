"""``napari-pcim demo``: napari with the demo plate, model and widgets, ready to look at.

:func:`run_demo` opens a viewer, docks the napari-pcim widgets (:func:`arrange_docks`:
tabbed so they fit a 1366×768 screen), opens the demo plate (generated once into the cache dir by
:func:`napari_pcim.cache.ensure_demo_plate`), loads the bundled classifier of the
phenotype, loads the first treated well and explains it with PCIM, with the
Explain widget's default options. The field shows as everywhere in napari-pcim
(:func:`napari_pcim.layers.field_layer_data`): instance masks hidden, ground truth as contours. With
``screenshot=FILE`` it waits for the explanation, saves a picture of the whole window
(``size``: the window's size, e.g. 1366×768) and exits: the documentation's
screenshots and the demo test use this.

Importing this module is cheap: napari, Qt and torch are imported inside the
functions that need them.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from napari_pcim.vocabulary import HIT_CLASS

#: How long ``--screenshot`` waits for the plate, the model and PCIM before giving up.
SCREENSHOT_TIMEOUT_S = 600.0
#: The napari-pcim docks, in their tab groups: the plate beside the model, then the work.
DOCK_GROUPS = (("Plate", "Model"), ("Explain", "Cells", "Compare", "Evaluate", "Export"))
#: Width × height of the screenshots in the documentation.
DOC_SIZE = (1920, 1080)


def parse_size(text: str) -> tuple[int, int]:
    """``"1366x768"`` -> ``(1366, 768)``; a ValueError naming the option otherwise."""
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"--size {text!r}: expected WIDTHxHEIGHT in pixels, e.g. 1366x768") from None
    if width < 640 or height < 480:
        raise ValueError(f"--size {text!r}: the window must be at least 640x480")
    return width, height


def arrange_docks(viewer: Any, docks: dict[str, Any],
                  size: tuple[int, int] | None = None) -> list[list[str]]:
    """Tab napari-pcim's docks so each gets at least its minimum size; returns the tab groups.

    The window is given ``size`` (default: the screen's free area). Two groups (plate
    and model above, the work below) when both fit its height, else one group; the
    first dock of each group is raised. The dock column is only as wide as the widest
    dock needs, so the canvas keeps the rest.
    """
    from qtpy.QtCore import Qt
    from qtpy.QtWidgets import QApplication, QTabBar

    qt_window = viewer.window._qt_window
    if size is None:
        free = qt_window.screen().availableGeometry()
        size = (min(qt_window.width(), free.width()), min(qt_window.height(), free.height()))
    groups = [[n for n in group if n in docks] for group in DOCK_GROUPS]
    groups = [g for g in groups if g] + [[n for n in docks if not any(n in g for g in groups)]]
    groups = [g for g in groups if g]
    room = (size[1] - qt_window.menuBar().sizeHint().height()
            - qt_window.statusBar().sizeHint().height())
    need = sum(max(docks[n].minimumSizeHint().height() for n in g) + 8 for g in groups)
    if need > room:
        groups = [[n for g in groups for n in g]]
        groups[0].sort(key=lambda n: n != "Explain")
    for group in groups:
        for name in group[1:]:
            qt_window.tabifyDockWidget(docks[group[0]], docks[name])
    QApplication.processEvents()  # let the tabbed layout settle, so the window can shrink
    for bar in qt_window.findChildren(QTabBar):  # the docks' tab bars scroll, never widen the column
        bar.setUsesScrollButtons(True)
        bar.setElideMode(Qt.TextElideMode.ElideNone)
        bar.setExpanding(False)
    qt_window.resize(*size)
    for group in groups:
        docks[group[0]].raise_()
    width = max(d.minimumSizeHint().width() for d in docks.values())
    qt_window.resizeDocks(list(docks.values()), [width] * len(docks), Qt.Orientation.Horizontal)
    return groups


def bundled_model_for(phenotype: str) -> Path:
    """The bundled classifier of ``phenotype``: ``<phenotype>_vgg``, else the first ``<phenotype>_*``."""
    from napari_pcim.classifier import ClassifierError, bundled_models

    models = bundled_models()
    if f"{phenotype}_vgg" in models:
        return models[f"{phenotype}_vgg"]
    for name in sorted(models):
        if name.startswith(f"{phenotype}_") and "pixelcam" not in name:
            return models[name]
    for name in sorted(models):
        if name.startswith(phenotype):
            return models[name]
    raise ClassifierError(
        f"no bundled model for phenotype {phenotype!r}; bundled: {sorted(models) or 'none'} "
        f"(train one with `napari-pcim train --phenotype {phenotype} --out MODEL.pt`)"
    )


def first_treated_well(plate: Any) -> str:
    """The first well the plate map calls treated, away from the plate edge when it can be.

    Edge wells are dimmer with a one-sided falloff (the synthetic plate's edge effect), so
    the demo opens on an inner hit; the plate's first well when none is called treated.
    """
    treated = [w for w in plate.wells if plate.phenotypes.get(w) == HIT_CLASS]
    inner = [w for w in treated if w not in plate.edge_wells]
    return (inner or treated or list(plate.wells))[0]


def run_demo(
    screenshot: str | None = None,
    phenotype: str = "foci",
    *,
    plate: str | os.PathLike | None = None,
    model: str | os.PathLike | None = None,
    options: dict[str, Any] | None = None,
    timeout_s: float = SCREENSHOT_TIMEOUT_S,
    size: tuple[int, int] | None = None,
) -> int:
    """Open napari ready to explore; with ``screenshot`` save the window and exit.

    ``plate``/``model``/``options`` replace the cached demo plate, the bundled
    model and PCIM's default options (tests use small ones); ``size`` is the window's
    (width, height) (default with ``screenshot``: :data:`DOC_SIZE`). Returns 0, or 1
    with a message on stderr when a step fails or ``timeout_s`` passes first.
    """
    import napari
    from qtpy.QtCore import QTimer

    from napari_pcim._napari.widgets.session import get_session

    viewer = napari.Viewer(title="napari-pcim demo")
    size = size or (DOC_SIZE if screenshot is not None else None)
    widgets = {
        name: viewer.window.add_plugin_dock_widget("napari-pcim", name)
        for group in DOCK_GROUPS for name in group
    }
    arrange_docks(viewer, {name: dock for name, (dock, _) in widgets.items()}, size)
    plate_w, model_w, explain_w = (widgets[n][1] for n in ("Plate", "Model", "Explain"))
    session = get_session(viewer)
    state: dict[str, Any] = {"rc": None}

    def finish(rc: int, message: str = "") -> None:
        if state["rc"] is not None:
            return
        state["rc"] = rc
        if message:
            print(f"napari-pcim demo: {message}", file=sys.stderr)
        if screenshot is not None:
            viewer.close()

    def failed(what: str) -> Callable[[BaseException], None]:
        return lambda exc: finish(1, f"{what} failed: {exc}")

    def on_plate(opened: Any) -> None:
        session.plate_changed.disconnect(on_plate)
        try:
            path = model if model is not None else bundled_model_for(phenotype)
        except ValueError as exc:
            finish(1, str(exc))
            return
        session.classifier_changed.connect(on_model)
        worker = model_w.load_model(path)
        worker.errored.connect(failed(f"loading the model {path}"))

    def on_model(classifier: Any) -> None:
        session.classifier_changed.disconnect(on_model)
        well = first_treated_well(session.plate)
        plate_w.well_map.set_current(well)
        worker = session.load_well(well, 0, on_done=on_well)
        if worker is not None:
            worker.errored.connect(failed(f"loading well {well}"))

    def on_well() -> None:
        explain_w.set_method("pcim")
        if options:
            explain_w.form().set_values(**options)
        worker = explain_w.run()
        if worker is None:
            finish(1, f"could not start PCIM: {explain_w.status.text()}")
            return
        worker.errored.connect(failed("PCIM"))
        worker.returned.connect(lambda _: QTimer.singleShot(300, on_explained))

    def on_explained() -> None:
        if screenshot is None:
            finish(0)
            return
        try:
            Path(screenshot).parent.mkdir(parents=True, exist_ok=True)
            viewer.screenshot(str(screenshot), canvas_only=False)
        except (OSError, RuntimeError, ValueError) as exc:
            finish(1, f"screenshot failed: {exc}")
            return
        finish(0)

    session.plate_changed.connect(on_plate)
    if screenshot is not None:
        QTimer.singleShot(int(timeout_s * 1000), lambda: finish(1, f"timed out after {timeout_s:g} s"))
    if plate is not None:
        QTimer.singleShot(0, lambda: plate_w.open_plate(plate) or finish(1, f"cannot open {plate}"))
    else:
        def open_demo() -> None:
            worker = plate_w.open_demo_plate(phenotype)
            if worker is not None:
                worker.errored.connect(failed("generating the demo plate"))

        QTimer.singleShot(0, open_demo)
    napari.run()
    return 0 if state["rc"] is None else int(state["rc"])


def run_demo_cli(args: Any) -> int:
    """``napari-pcim demo [--screenshot FILE] [--phenotype P] [--size WxH]``."""
    size = getattr(args, "size", None)
    return run_demo(screenshot=args.screenshot, phenotype=args.phenotype,
                    size=parse_size(size) if size else None)
