"""``napari-pcim demo --screenshot``: the whole demo path in a subprocess under the display.

The demo opens napari, loads a plate and a model, explains the first treated
well with PCIM, saves a window screenshot and exits. A small plate and a tiny
scripted model stand in for the cached demo plate and the bundled model (the
same code path, via ``run_demo(plate=..., model=...)``), so the test stays fast.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.gui




@pytest.mark.skipif(
    sys.platform.startswith("linux") and not os.environ.get("DISPLAY"),
    reason="needs a display (run under xvfb-run)",
)
def test_demo_screenshot(tmp_path):
    from gui_plate import save_tiny_model

    from napari_pcim.synth import make_plate

    plate = make_plate(tmp_path / "p.zarr", plate_format=96, fields=1, size=128)
    model = save_tiny_model(tmp_path / "tiny.pt", ["DAPI", "GFP"])
    shot = tmp_path / "s.png"
    code = textwrap.dedent(f"""
        import sys
        from napari_pcim._napari.demo import run_demo
        sys.exit(run_demo(screenshot={str(shot)!r}, plate={str(plate)!r}, model={str(model)!r},
                          options={{"steps": 10}}, timeout_s=120))
    """)
    env = {**os.environ, "NAPARI_PCIM_CACHE": str(tmp_path / "cache")}
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=180,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000

