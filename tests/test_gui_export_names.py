"""A field exported from the GUI and from the CLI is named the same, and written like any file.

The Export widget offers ``B03_f0.ome.tif`` for well B03's field 0; ``napari-pcim explain``
names the same field ``OUT_B03_f0.ome.tif`` (both from ``vocabulary.field_stem``). The
metrics CSV written beside an export goes through ``napari_pcim.atomic``, so it gets the
umask's permissions (it used to be 0600, from ``mkstemp``). The Export widget asks before
replacing an earlier export's image or CSV.
"""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest

from napari_pcim._napari.writer import default_filename, export_layer_data, metrics_path
from napari_pcim.layers import KIND, attribution_layer_data, field_layer_data


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_metrics_csv_gets_umask_permissions(tmp_path):
    image = np.random.default_rng(0).integers(0, 1000, (2, 32, 32)).astype(np.uint16)
    gt = np.zeros((32, 32), np.uint8)
    gt[8:16, 8:16] = 1
    layers = field_layer_data(image, {"gt": gt}, ["DAPI", "GFP"], (0.65, 0.65), "B03", 0,
                              phenotype="foci")
    amap = np.zeros((32, 32), np.float32)
    amap[10:14, 10:14] = 1.0
    layers.append(attribution_layer_data(amap, label="PCIM", target="treated", well="B03",
                                         field=0, scale=(0.65, 0.65)))
    out = tmp_path / default_filename("B03", 0)
    assert out.name == "B03_f0.ome.tif"
    written = export_layer_data(out, layers)
    csv = metrics_path(out)
    assert written == [str(out), str(csv)] and csv.name == "B03_f0.ome.tif.metrics.csv"
    assert stat.S_IMODE(csv.stat().st_mode) == 0o666 & ~_umask()
    header, row = csv.read_text().splitlines()
    assert row.startswith("PCIM · treated,GT foci,")  # names without the well and field
    assert layers[-1][1]["metadata"][KIND] == "attribution"


@pytest.mark.gui
def test_gui_and_cli_name_a_field_alike(make_napari_viewer, qtbot, tmp_path):
    pytest.importorskip("pytestqt")
    pytest.importorskip("torch")
    from napari_pcim._napari.widgets.session import get_session
    from napari_pcim.cli.main import main
    from napari_pcim.synth import make_plate

    plate = make_plate(tmp_path / "p.zarr", plate_format=96, fields=1, size=64)
    out = tmp_path / "cli" / "out.ome.tif"
    out.parent.mkdir()
    rc = main(["explain", str(plate), "--model", "foci_vgg", "--method", "pcim",
               "--wells", "B03,B04", "--fields", "0", "--set", "steps=2", "--out", str(out)])
    assert rc == 0
    cli_names = sorted(p.name for p in out.parent.glob("*.ome.tif"))

    viewer = make_napari_viewer()
    w = {n: viewer.window.add_plugin_dock_widget("napari-pcim", n)[1] for n in ("Plate", "Export")}
    assert w["Plate"].open_plate(plate) is not None
    names = []
    for well in ("B03", "B04"):
        w["Plate"].select_well(well, 0)
        qtbot.waitUntil(lambda well=well: get_session(viewer).well == well, timeout=30_000)
        names.append(f"out_{w['Export'].suggested_name()}")
    assert cli_names == names == ["out_B03_f0.ome.tif", "out_B04_f0.ome.tif"]


@pytest.mark.gui
def test_export_widget_asks_before_replacing_an_earlier_export(make_napari_viewer, qtbot, tmp_path):
    """The case of the issue: a second export of a well silently replaced the first one's CSV."""
    from napari_pcim._napari.widgets.session import get_session
    from napari_pcim.synth import make_plate

    plate = make_plate(tmp_path / "p.zarr", plate_format=96, fields=1, size=64)
    viewer = make_napari_viewer()
    w = {n: viewer.window.add_plugin_dock_widget("napari-pcim", n)[1] for n in ("Plate", "Export")}
    assert w["Plate"].open_plate(plate) is not None
    w["Plate"].select_well("B03", 0)
    session = get_session(viewer)
    qtbot.waitUntil(lambda: session.well == "B03", timeout=30_000)
    amap = np.random.default_rng(1).random((64, 64)).astype(np.float32)
    session.add_layers("B03", [attribution_layer_data(
        amap, label="PCIM", target="treated", well="B03", field=0, scale=(0.65, 0.65),
        metadata={"method": "pcim"})])
    export, asked = w["Export"], []
    export.confirm_overwrite = lambda paths: asked.append(paths) or False
    out = tmp_path / "B03_f0.ome.tif"
    assert export.export(out) == [str(out), str(metrics_path(out))] and not asked
    first = metrics_path(out).read_bytes()
    # the same well again: asked about both files, and both kept on "no"
    assert export.export(out) == [] and asked == [[out, metrics_path(out)]]
    assert metrics_path(out).read_bytes() == first and "were kept" in export.status.text()
    # the other format has its own CSV: nothing to ask, the first CSV untouched
    assert len(export.export(tmp_path / "B03_f0.ome.zarr")) == 2 and len(asked) == 1
    assert metrics_path(out).read_bytes() == first
    export.confirm_overwrite = lambda paths: True
    assert export.export(out)[0] == str(out)
