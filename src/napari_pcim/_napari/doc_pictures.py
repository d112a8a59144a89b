"""``napari-pcim demo --doc-pictures DIR``: every picture of the user guide, made by the demo.

The pictures are what a newcomer sees: the demo's window, docks arranged by
:func:`~napari_pcim._napari.demo.arrange_docks`, the demo plate and the bundled classifier,
each method at the Explain dock's defaults. One run writes into ``DIR``:

- ``overview.png`` (1920×1080) and ``overview-1366.png`` (1366×768): the window after
  PCIM with per-channel attribution on the first treated well;
- ``explain_widget.png``: the Explain dock with its channel-importance chart;
- ``cells_widget.png``: the Cells dock's per-cell table of that map over the cells;
- ``evaluate_widget.png``: the Evaluate dock scoring the map against the ground truth;
- ``compare_grid.png``: the Compare grid of the hit well and a DMSO well by PCIM and
  RISE, each tile labelled on the canvas;
- ``plate_widget.png``: the Plate dock after *Explain plate* on the DMSO and positive
  control columns, wells coloured by a statistic that needs no ground truth
  (concentration) with outliers outlined.

The steps run in this thread, waiting on the widgets' own workers (the Qt event loop
keeps turning meanwhile), because the order matters and each picture needs the one
before it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from napari_pcim.vocabulary import FIRST_FIELD, HIT_CLASS

#: The plate columns explained for the well-map picture: DMSO (1, 2) and positive controls (11, 12).
PLATE_COLUMNS = (1, 2, 11, 12)
#: The GT-free statistic the well-map picture is coloured by.
PLATE_COLOUR = "concentration"
#: The laptop-sized overview.
LAPTOP_SIZE = (1366, 768)


class PictureError(RuntimeError):
    """A step of the picture run failed or timed out; the message names the step."""


def _wait(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    from qtpy.QtWidgets import QApplication

    app, end = QApplication.instance(), time.perf_counter() + timeout_s
    while not condition():
        if time.perf_counter() > end:
            raise PictureError(f"timed out after {timeout_s:g} s waiting for {what}")
        app.processEvents()
        time.sleep(0.01)
    app.processEvents()


class _Demo:
    """One demo window: its viewer, docks and widgets, and the synchronous steps."""

    def __init__(self, size: tuple[int, int], plate: Path, model: Path, timeout_s: float) -> None:
        import napari

        from napari_pcim._napari.demo import DOCK_GROUPS, arrange_docks
        from napari_pcim._napari.widgets.session import get_session

        self.timeout_s = timeout_s
        self.viewer = napari.Viewer(title="napari-pcim demo")
        pairs = {n: self.viewer.window.add_plugin_dock_widget("napari-pcim", n)
                 for group in DOCK_GROUPS for n in group}
        self.docks = {n: d for n, (d, _) in pairs.items()}
        self.w = {n: w for n, (_, w) in pairs.items()}
        arrange_docks(self.viewer, self.docks, size)
        self.session = get_session(self.viewer)
        if self.w["Plate"].open_plate(plate) is None:
            raise PictureError(f"cannot open the plate {plate}: {self.w['Plate'].status.text()}")
        self.w["Model"].load_model(model)
        _wait(lambda: self.session.classifier is not None, timeout_s, f"the model {model}")

    def show_well(self, well: str) -> None:
        self.w["Plate"].select_well(well, FIRST_FIELD)
        _wait(lambda: self.session.well == well and well in self.session.views,
              self.timeout_s, f"well {well}")

    def explain(self, method: str, options: dict[str, Any] | None = None,
                per_channel: bool = False) -> Any:
        """Run ``method`` on the shown field with the dock's defaults (+ ``options``);
        returns the new attribution layer."""
        from napari_pcim.layers import KIND

        explain = self.w["Explain"]
        explain.set_method(method)
        if options:
            explain.form().set_values(**options)
        explain.channel_panel.per_channel_box.setChecked(per_channel)
        before = {id(ly) for ly in self.viewer.layers}
        if explain.run() is None:
            raise PictureError(f"could not start {method}: {explain.status.text()}")
        _wait(lambda: explain.worker is None, self.timeout_s, method)
        new = [ly for ly in self.viewer.layers
               if id(ly) not in before and ly.metadata.get(KIND) == "attribution"]
        if not new:
            raise PictureError(f"{method} added no map: {explain.status.text()}")
        return new[0]

    def grab(self, name: str, path: Path) -> Path:
        """Save dock ``name`` as it shows now (raised to the front first)."""
        from qtpy.QtWidgets import QScrollArea

        self.docks[name].raise_()
        _wait(lambda: True, 1, "the dock")
        scroll = self.w[name].findChild(QScrollArea)  # a scrolling dock: all of its content
        (scroll.widget() if scroll is not None else self.w[name]).grab().save(str(path))
        return path

    def window(self, path: Path, canvas_only: bool = False) -> Path:
        _wait(lambda: True, 1, "the window")
        self.viewer.screenshot(str(path), canvas_only=canvas_only)
        return path


def _labels(viewer: Any, well: str, label: str) -> Any:
    """The Labels layer ``label`` (``"gt"``, ``"cells"``, …) of ``well``."""
    from napari_pcim.layers import KIND

    return next(ly for ly in viewer.layers if ly.metadata.get(KIND) == "labels"
                and ly.metadata.get("well") == well and ly.metadata.get("label") == label)


def _frame(viewer: Any, layers: Sequence[Any], margin: float = 0.05) -> None:
    """Centre and zoom the camera on ``layers`` (napari's reset_view frames hidden layers too)."""
    import numpy as np

    boxes = np.array([np.asarray(ly.extent.world)[:, -2:] for ly in layers])  # (n, 2, 2)
    low, high = boxes[:, 0].min(axis=0), boxes[:, 1].max(axis=0)
    canvas = viewer.window._qt_viewer.canvas.native
    height, width = (high - low) * (1 + 2 * margin)
    camera = getattr(viewer, "scene", viewer).camera  # napari >= 0.9 keeps it in .scene
    camera.center = tuple((low + high) / 2)
    camera.zoom = min(canvas.height() / height, canvas.width() / width)


def _control_well(plate: Any) -> str:
    """An inner DMSO well (else any well the plate map does not call a hit)."""
    others = [w for w in plate.wells if plate.phenotypes.get(w) != HIT_CLASS]
    dmso = [w for w in others if plate.conditions.get(w) == "DMSO" and w not in plate.edge_wells]
    return (dmso or others or list(plate.wells))[0]


def make_doc_pictures(
    out: str | Path,
    *,
    plate: str | Path | None = None,
    model: str | Path | None = None,
    options: dict[str, dict[str, Any]] | None = None,
    columns: Sequence[int] = PLATE_COLUMNS,
    timeout_s: float = 1800.0,
    log: Callable[[str], None] = print,
) -> list[Path]:
    """Write the user guide's pictures into ``out`` (see the module docstring); returns them.

    ``plate``/``model`` replace the demo plate and the bundled foci classifier and
    ``options`` ({method: {option: value}}) the dock's defaults (the test uses small ones).
    Raises :class:`PictureError` naming the step that failed.
    """
    from napari_pcim._napari.demo import DOC_SIZE, bundled_model_for, first_treated_well
    from napari_pcim.cache import ensure_demo_plate

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    plate = Path(plate) if plate is not None else ensure_demo_plate("foci")
    model = Path(model) if model is not None else bundled_model_for("foci")
    options = options or {}
    written: list[Path] = []

    log(f"1366×768 overview of {plate.name} …")
    small = _Demo(LAPTOP_SIZE, plate, model, timeout_s)
    hit = first_treated_well(small.session.plate)
    small.show_well(hit)
    small.explain("pcim", options.get("pcim"), per_channel=True)
    written.append(small.window(out / "overview-1366.png"))
    small.viewer.close()

    log("1920×1080 overview and dock close-ups …")
    demo = _Demo(DOC_SIZE, plate, model, timeout_s)
    s = demo.session
    demo.show_well(hit)
    pcim = demo.explain("pcim", options.get("pcim"), per_channel=True)
    demo.viewer.layers.selection.active = pcim
    written.append(demo.window(out / "overview.png"))
    demo.docks["Explain"].raise_()
    written.append(demo.grab("Explain", out / "explain_widget.png"))
    gt = _labels(demo.viewer, hit, "gt")
    demo.w["Cells"].compute(pcim.name, _labels(demo.viewer, hit, "cells").name)
    written.append(demo.grab("Cells", out / "cells_widget.png"))
    demo.w["Evaluate"].evaluate(pcim.name, gt.name)
    written.append(demo.grab("Evaluate", out / "evaluate_widget.png"))

    log("compare grid: the hit well and a DMSO well by PCIM and RISE …")
    demo.explain("rise", options.get("rise"))
    s.toggle_pin(hit)
    dmso = _control_well(s.plate)
    demo.show_well(dmso)
    demo.explain("pcim", options.get("pcim"))
    demo.explain("rise", options.get("rise"))
    demo.docks["Compare"].raise_()
    demo.w["Compare"].refresh()
    tiles = demo.w["Compare"].compare([hit, dmso], ["PCIM", "RISE"])
    if not tiles:
        raise PictureError(f"Compare made no grid: {demo.w['Compare'].status.text()}")
    shown = {ly.name: ly.visible for ly in demo.viewer.layers}
    for ly in demo.viewer.layers:
        ly.visible = ly in tiles
    _frame(demo.viewer, tiles)
    written.append(demo.window(out / "compare_grid.png", canvas_only=True))
    for ly in demo.viewer.layers:
        ly.visible = shown.get(ly.name, True)

    wells = [w for w in s.plate.wells if int(w[1:]) in set(columns)]
    log(f"explain plate: {len(wells)} wells of columns {', '.join(map(str, columns))} …")
    explain = demo.w["Explain"]
    explain.set_method("pcim")
    if options.get("pcim"):
        explain.form().set_values(**options["pcim"])
    explain.channel_panel.per_channel_box.setChecked(False)
    if explain.plate_panel.explain_plate(wells) is None:
        raise PictureError(f"could not start Explain plate: {explain.status.text()}")
    _wait(lambda: explain.worker is None, timeout_s, "Explain plate")
    if s.results is None:
        raise PictureError(f"Explain plate stored nothing: {explain.status.text()}")
    demo.w["Plate"].color_by.setCurrentText(PLATE_COLOUR)
    written.append(demo.grab("Plate", out / "plate_widget.png"))
    demo.viewer.close()
    return written


def run_doc_pictures_cli(out: str) -> int:
    """The ``--doc-pictures`` branch of ``napari-pcim demo``: 0, or 1 with the failed step."""
    import sys

    from qtpy.QtWidgets import QApplication

    try:
        import napari  # noqa: F401  (creates the QApplication on first viewer)

        paths = make_doc_pictures(out, log=lambda m: print(f"napari-pcim demo: {m}", file=sys.stderr))
    except PictureError as exc:
        print(f"napari-pcim demo: {exc}", file=sys.stderr)
        return 1
    finally:
        app = QApplication.instance()
        if app is not None:
            app.processEvents()
    print("\n".join(str(p) for p in paths))
    return 0
