"""``napari-pcim demo --doc-pictures``: every user-guide picture is made by the demo itself.

A small plate and a tiny scripted model stand in for the demo plate and the bundled
classifier (the same code path), so the run stays short; the pictures must all be
written, be PNGs with content, and come from the steps they name (the compare grid
holds two wells × two methods, the well map was coloured by a GT-free statistic).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.gui

PICTURES = ("overview.png", "overview-1366.png", "explain_widget.png", "cells_widget.png",
            "evaluate_widget.png", "compare_grid.png", "plate_widget.png")




@pytest.mark.skipif(sys.platform.startswith("linux") and not os.environ.get("DISPLAY"),
                    reason="needs a display (run under xvfb-run)")
def test_doc_pictures_are_all_made_by_the_demo(tmp_path):
    from gui_plate import save_tiny_model

    from napari_pcim.synth import make_plate

    plate = make_plate(tmp_path / "p.zarr", plate_format=96, fields=1, size=96)
    model = save_tiny_model(tmp_path / "tiny.pt", ["DAPI", "GFP"])
    out = tmp_path / "images"
    code = textwrap.dedent(f"""
        import json, sys
        from napari_pcim._napari.doc_pictures import make_doc_pictures
        paths = make_doc_pictures({str(out)!r}, plate={str(plate)!r}, model={str(model)!r},
                                  options={{"pcim": {{"steps": 3}}, "rise": {{"n_masks": 40}}}},
                                  columns=(12,), timeout_s=150)
        print(json.dumps([str(p) for p in paths]))
    """)
    env = {**os.environ, "NAPARI_PCIM_CACHE": str(tmp_path / "cache")}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=400, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == sorted(PICTURES)
    from PIL import Image

    for name in PICTURES:
        data = (out / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n", name
        with Image.open(out / name) as im:
            assert len(np.unique(np.asarray(im.convert("L")))) > 8, f"{name} is blank"
    with Image.open(out / "overview-1366.png") as small, Image.open(out / "overview.png") as big:
        assert small.size[0] < big.size[0]
