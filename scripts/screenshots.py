"""Take the user guide's widget close-ups from a real napari viewer (run under Xvfb).

    xvfb-run -a -s "-screen 0 1920x1080x24" python scripts/screenshots.py [--model M] [--plate P]

The whole-window pictures are made by the demo itself, exactly as a newcomer sees it:
``napari-pcim demo --screenshot docs/images/overview.png`` (1920×1080) and
``napari-pcim demo --screenshot docs/images/overview-1366.png --size 1366x768``.

This script opens napari with the napari-pcim widgets arranged as the demo does
(:func:`napari_pcim._napari.demo.arrange_docks`) on
the demo plate (generated once into the cache dir) and the bundled foci classifier,
explains the first treated well with PCIM, then saves into ``docs/images/``:

- ``plate_widget.png``: the Plate widget, wells coloured by predicted P(treated)
  after "Explain plate" on one column of wells;
- ``explain_widget.png``: the Explain widget with its options;
- ``evaluate_widget.png``: the Evaluate widget's metrics table for the PCIM map.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "docs" / "images"


def _wait(app, condition, timeout_s: float, what: str) -> None:
    end = time.perf_counter() + timeout_s
    while not condition():
        if time.perf_counter() > end:
            raise TimeoutError(f"timed out waiting for {what}")
        app.processEvents()
        time.sleep(0.005)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="TorchScript classifier (default: bundled foci model)")
    parser.add_argument("--plate", help="plate (default: the cached demo plate)")
    parser.add_argument("--out", type=Path, default=OUT, help=f"folder (default {OUT})")
    args = parser.parse_args(argv)

    import napari
    from qtpy.QtWidgets import QApplication

    from napari_pcim._napari.demo import (
        DOC_SIZE,
        DOCK_GROUPS,
        arrange_docks,
        bundled_model_for,
        first_treated_well,
    )
    from napari_pcim._napari.widgets.session import get_session
    from napari_pcim.cache import ensure_demo_plate
    from napari_pcim.layers import KIND

    model = args.model or str(bundled_model_for("foci"))
    plate = args.plate or str(ensure_demo_plate("foci"))
    args.out.mkdir(parents=True, exist_ok=True)

    viewer = napari.Viewer(title="napari-pcim")
    docks = {
        n: viewer.window.add_plugin_dock_widget("napari-pcim", n)
        for group in DOCK_GROUPS for n in group
    }
    arrange_docks(viewer, {n: d[0] for n, d in docks.items()}, DOC_SIZE)
    w = {n: d[1] for n, d in docks.items()}
    app = QApplication.instance()
    session = get_session(viewer)

    w["Plate"].open_plate(plate)
    w["Model"].load_model(model)
    _wait(app, lambda: session.classifier is not None, 120, "the model")
    well = first_treated_well(session.plate)
    w["Plate"].select_well(well, 0)
    _wait(app, lambda: session.well == well, 120, f"well {well}")

    explain = w["Explain"]
    explain.set_method("pcim")
    explain.run()
    _wait(app, lambda: explain.worker is None, 600, "PCIM")
    maps = [layer for layer in viewer.layers if layer.metadata.get(KIND) == "attribution"]
    if not maps:
        print(f"PCIM failed: {explain.status.text()}", file=sys.stderr)
        return 1
    gt = next(layer for layer in viewer.layers
              if layer.metadata.get("napari_pcim", {}).get("kind") == "gt")
    viewer.layers.selection.active = maps[0]
    app.processEvents()
    explain.grab().save(str(args.out / "explain_widget.png"))

    # a column of wells explained quickly with RISE, then the map coloured by prediction
    column = [wl for wl in session.plate.wells if wl.endswith(well[1:])]
    explain.set_method("rise")
    explain.form().set_values(n_masks=200)
    explain.plate_panel.explain_plate(column)
    _wait(app, lambda: explain.worker is None, 900, "Explain plate")
    w["Plate"].color_by.setCurrentText("prediction")
    app.processEvents()
    w["Plate"].grab().save(str(args.out / "plate_widget.png"))

    docks["Evaluate"][0].raise_()
    w["Evaluate"].evaluate(maps[0].name, gt.name)
    app.processEvents()
    w["Evaluate"].grab().save(str(args.out / "evaluate_widget.png"))
    viewer.close()
    print(f"screenshots written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
