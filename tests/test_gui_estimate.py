"""The Explain dock's time estimate before Run, and its progress counting RISE's masks (real viewer)."""

from __future__ import annotations

import pytest

pytest.importorskip("pytestqt")

from gui_plate import WAIT_MS, dock_all, model_path, open_well, plate_path, run  # noqa: F401 - fixtures

pytestmark = pytest.mark.gui


@pytest.fixture
def docks(make_napari_viewer, qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("NAPARI_PCIM_CACHE", str(tmp_path))
    viewer = make_napari_viewer()
    yield viewer, dock_all(viewer)


def test_estimate_before_run_and_progress_in_masks(docks, qtbot, plate_path, model_path) -> None:  # noqa: F811
    viewer, d = docks
    explain = d["Explain"]
    assert explain.estimate.text() == ""  # nothing loaded: no estimate
    open_well(viewer, d, qtbot, plate_path, model_path)
    explain.set_method("rise")
    explain.form().set_values(n_masks=3000, tolerance=0.0)
    qtbot.waitUntil(lambda: explain.estimate_seconds is not None, timeout=WAIT_MS)
    assert explain.estimate.text().endswith("on this machine.")
    long = explain.estimate_seconds
    assert long[0] == long[1] > 0  # tolerance 0: every mask is drawn
    explain.form().set_values(n_masks=300)  # the estimate follows the form
    qtbot.waitUntil(lambda: explain.estimate_seconds is not None, timeout=WAIT_MS)
    assert explain.estimate_seconds[0] < long[0] / 5
    run(explain, qtbot, "rise", n_masks=300, tolerance=0.0)
    assert (explain.progress.bar.maximum(), explain.progress.bar.value()) == (300, 300)
    explain.set_method("occlusion")
    qtbot.waitUntil(lambda: explain.estimate.text() == "Estimate: not available for this method.",
                    timeout=WAIT_MS)
