"""Explain dock, in a real viewer: per-channel runs (chart, channel layers), the dock's
own progress bar, and readable maps (diverging signed maps, one contrast per method)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pytestqt")
pytest.importorskip("torch")

from gui_plate import dock_all, model_path, open_well, plate_path, run  # noqa: F401 - fixtures

from napari_pcim._napari.widgets.session import get_session
from napari_pcim.layers import KIND, METHOD_COLORMAPS, SCALE_PERCENTILE, diverging_colormap

pytestmark = pytest.mark.gui


@pytest.fixture
def ui(make_napari_viewer, qtbot, plate_path, model_path):
    viewer = make_napari_viewer()
    docks = dock_all(viewer)
    open_well(viewer, docks, qtbot, plate_path, model_path)
    return viewer, docks


def _maps(viewer, kind="attribution"):
    return [layer for layer in viewer.layers if layer.metadata.get(KIND) == kind]


def test_per_channel_run_shows_channel_importance_chart(ui, qtbot):
    _, docks = ui
    explain = docks["Explain"]
    panel = explain.channel_panel
    assert not panel.add_btn.isEnabled()
    panel.per_channel_box.setChecked(True)
    assert "per_channel" not in explain.current_options()  # a run setting, not a method option
    run(explain, qtbot, "pcim", steps=10, batch_size=8)
    ctx, attribution = panel.result
    assert ctx.per_channel and attribution.channel_names == ("DAPI", "GFP")
    np.testing.assert_allclose(panel.bar_heights(), attribution.channel_importance[0], rtol=1e-6)
    ax = panel.figure.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["DAPI", "GFP"]
    assert "B03 f0" in ax.get_title() and "PCIM" in ax.get_title()
    values = [t.get_text() for t in ax.texts]  # bar labels: the numbers
    assert values == [f"{v:.2f}" for v in attribution.channel_importance[0, 0]]
    assert panel.canvas.isVisibleTo(explain) and panel.add_btn.isEnabled()


def test_add_channel_maps_names_layers_of_the_run_well(ui, qtbot, plate_path, model_path):
    viewer, docks = ui
    explain = docks["Explain"]
    explain.channel_panel.per_channel_box.setChecked(True)
    run(explain, qtbot, "pcim", steps=10, batch_size=8)
    _, attribution = explain.channel_panel.result
    target = attribution.classes[int(attribution.targets[0, 0])]
    open_well(viewer, docks, qtbot, plate_path, model_path, well="C05")  # move on first
    added = explain.channel_panel.add_channel_maps()
    assert [layer.name for layer in added] == [
        f"PCIM · {target} · DAPI · B03 f0", f"PCIM · {target} · GFP · B03 f0"
    ]
    for c, layer in enumerate(added):
        assert layer.metadata[KIND] == "attribution_channel" and layer.metadata["well"] == "B03"
        np.testing.assert_array_equal(layer.data, attribution.channel_maps[0, 0, c])
        assert layer.metadata["channel_importance"] == pytest.approx(
            attribution.channel_importance[0, 0, c])


def test_dock_progress_bar_reaches_its_maximum(ui, qtbot):
    _, docks = ui
    explain = docks["Explain"]
    assert not explain.progress.isVisibleTo(explain)
    run(explain, qtbot, "rise", n_masks=32, batch_size=16)
    bar = explain.progress.bar
    assert explain.progress.isVisibleTo(explain)
    assert bar.maximum() > 0 and bar.value() == bar.maximum()
    assert "ended after" in explain.progress.eta.text()


def test_signed_map_gets_symmetric_limits_and_diverging_colormap(ui, qtbot):
    viewer, docks = ui
    run(docks["Explain"], qtbot, "input_x_gradient")
    (layer,) = _maps(viewer)
    assert (layer.data < 0).any() and (layer.data > 0).any()
    lo, hi = layer.contrast_limits
    assert lo == pytest.approx(-hi) and hi > 0
    assert hi == pytest.approx(np.percentile(np.abs(layer.data), SCALE_PERCENTILE), rel=0.02)
    assert layer.colormap.name == diverging_colormap("input_x_gradient")["name"]
    assert layer.metadata["contrast"]["signed"] and "percentile" in layer.metadata["contrast"]["meaning"]


def test_two_wells_explained_with_one_method_share_contrast_limits(ui, qtbot, plate_path, model_path):
    viewer, docks = ui
    explain = docks["Explain"]
    session = get_session(viewer)
    run(explain, qtbot, "pcim", steps=10, batch_size=8)
    session.toggle_pin("B03")
    open_well(viewer, docks, qtbot, plate_path, model_path, well="C05")
    run(explain, qtbot, "pcim", steps=10, batch_size=8)
    b03, c05 = _maps(viewer)
    assert (b03.metadata["well"], c05.metadata["well"]) == ("B03", "C05")
    assert tuple(b03.contrast_limits) == pytest.approx(tuple(c05.contrast_limits))
    assert b03.metadata["contrast"] == c05.metadata["contrast"]
    assert c05.metadata["contrast"]["maps"] == 2
    low, high = b03.contrast_limits  # PCIM's mass-change maps are signed: centred on 0
    assert low == pytest.approx(-high) and high > 0
    assert b03.colormap.name == diverging_colormap("pcim")["name"]
    run(explain, qtbot, "rise", n_masks=32, batch_size=16)  # another method, another colormap
    rise = _maps(viewer)[-1]
    assert rise.metadata["method"] == "rise" and rise.colormap.name != b03.colormap.name
    assert rise.colormap.name in (METHOD_COLORMAPS["rise"], diverging_colormap("rise")["name"])
    assert tuple(b03.contrast_limits) == pytest.approx(tuple(c05.contrast_limits))
