"""Channel maps: suggestion by name and dye, the text form, saved beside the plate, applied
to the plate so the bundled model's channel matching works; the CLI options."""

from __future__ import annotations

import argparse
import json

import pytest
from instrument_layouts import harmony, imagexpress, value

from napari_pcim.cli.plate_args import add_plate_read_arguments, plate_read_kwargs
from napari_pcim.plate_io import PlateError, open_plate
from napari_pcim.plate_io.channel_map import (
    as_plate_map,
    band,
    channel_map_path,
    check_model_channels,
    load_channel_map,
    parse_channel_map,
    save_channel_map,
    suggest_channel_map,
)

MODEL = ["DAPI", "Actin", "GFP", "Brightfield"]


def test_suggestion_by_name_dye_and_wavelength():
    assert band("HOECHST 33342") == band("DAPI") == "blue"
    assert band("Alexa 488") == band("GFP") == band("FITC") == "green"
    assert band("Em 520") == "green" and band("w1") is None
    plate = ["Brightfield", "Alexa 488", "HOECHST 33342", "Phalloidin 568"]
    assert suggest_channel_map(MODEL, plate) == {
        "DAPI": "HOECHST 33342", "Actin": "Phalloidin 568", "GFP": "Alexa 488",
        "Brightfield": "Brightfield",
    }
    # no hints: the plate's order; each plate channel used once
    assert suggest_channel_map(MODEL, ["w1", "w2", "w3", "w4"]) == dict(zip(MODEL, ["w1", "w2", "w3", "w4"]))
    assert suggest_channel_map(["DAPI", "GFP"], ["gfp", "x"]) == {"GFP": "gfp", "DAPI": "x"}


def test_parse_text_form_and_errors():
    assert parse_channel_map(" w1=DAPI, w2 = Actin ,") == {"w1": "DAPI", "w2": "Actin"}
    with pytest.raises(PlateError, match=r"'w2' is not PLATE_CHANNEL=MODEL_CHANNEL"):
        parse_channel_map("w1=DAPI,w2")
    with pytest.raises(PlateError, match="given twice"):
        parse_channel_map("w1=DAPI,w1=GFP")
    with pytest.raises(PlateError, match="is empty"):
        parse_channel_map(" , ")


def test_map_saved_beside_plate_and_applied(tmp_path):
    root = imagexpress(tmp_path / "IX", names=("Hoechst", "GFP-ish", "Ph", "TL"), htd=True)
    before = sorted(p.name for p in root.rglob("*"))
    mapping = {"Hoechst": "DAPI", "Ph": "Actin", "TL": "Brightfield", "GFP-ish": "GFP"}
    out = save_channel_map(root, mapping)
    assert out == tmp_path / "IX.napari-pcim-channels.json" and out.parent == root.parent
    assert sorted(p.name for p in root.rglob("*")) == before  # nothing written inside
    assert json.loads(out.read_text())["channel_map"] == mapping
    assert load_channel_map(root) == mapping
    with pytest.raises(FileExistsError):
        save_channel_map(root, mapping, overwrite=False)

    p = open_plate(root, channel_map=True)
    assert p.channel_names == ["DAPI", "GFP", "Actin", "Brightfield"]
    assert p.channel_map == mapping and p.read_field("B03")[:, 0, 0].tolist()[0] == value(2, 3, 1, 1)
    check_model_channels(p.channel_names, MODEL, str(p.path))
    assert open_plate(root).channel_names == p.channel_names  # reused by default (batch, CLI)
    assert open_plate(root, channel_map=False).channel_names == ["Hoechst", "GFP-ish", "Ph", "TL"]
    # text form, and a plate without a saved map
    p2 = open_plate(harmony(tmp_path / "ph"), channel_map="hoechst 33342=DAPI,Alexa 488=GFP")
    assert p2.channel_names == ["DAPI", "GFP"] and load_channel_map(p2.path) is None
    out.write_text("{not json")
    with pytest.raises(PlateError, match=r"IX\.napari-pcim-channels\.json: unreadable channel map"):
        open_plate(root, channel_map=True)


def test_refusals_name_the_channel(tmp_path):
    root = imagexpress(tmp_path / "IX")
    with pytest.raises(PlateError, match=r"names plate channel 'w9', which this plate lacks"):
        open_plate(root, channel_map={"w9": "DAPI"})
    with pytest.raises(PlateError, match=r"two channels the name\(s\) \['DAPI'\]"):
        open_plate(root, channel_map={"FITC": "DAPI"})
    with pytest.raises(PlateError, match=r"model needs channel\(s\) \['Actin'\]"):
        check_model_channels(["DAPI", "GFP"], ["DAPI", "Actin"], "IX")


def test_bundled_model_matches_mapped_plate(tmp_path):
    from napari_pcim.classifier import ClassifierError, bundled_model_path, load_classifier

    root = imagexpress(tmp_path / "IX", names=("w1", "w2", "w3", "w4"), htd=False)
    plain = open_plate(root)
    with pytest.raises(ClassifierError, match="needs channel"):
        load_classifier(bundled_model_path("foci_vgg"), channels=plain.channel_names)
    suggestion = suggest_channel_map(MODEL, plain.channel_names)
    mapped = plain.with_channel_map(as_plate_map(suggestion))
    clf = load_classifier(bundled_model_path("foci_vgg"), channels=mapped.channel_names)
    assert clf.channel_indices(mapped.channel_names) == [0, 1, 2, 3]


def test_cli_plate_read_options(tmp_path):
    root = imagexpress(tmp_path / "IX", zs=2)
    ap = argparse.ArgumentParser()
    ap.add_argument("plate")
    add_plate_read_arguments(ap)
    args = ap.parse_args([str(root), "--z", "1", "--timepoint", "0", "--channel-map", "DAPI=nuc",
                          "--save-channel-map"])
    kw = plate_read_kwargs(args)
    assert kw == {"channel_map": {"DAPI": "nuc"}, "z": 1, "t": 0}
    assert channel_map_path(root).is_file()
    p = open_plate(root, **kw)
    assert p.channel_names == ["nuc", "FITC"] and p.planes["z"] == 1
    assert plate_read_kwargs(ap.parse_args([str(root)])) == {"channel_map": True}
    assert open_plate(root, **plate_read_kwargs(ap.parse_args([str(root)]))).channel_names[0] == "nuc"
    with pytest.raises(PlateError, match="z plane 'top'"):
        plate_read_kwargs(ap.parse_args([str(root), "--z", "top"]))


@pytest.mark.gui
def test_channel_map_widget_prefills_saves_and_applies(qtbot, tmp_path):
    from napari_pcim._napari.widgets.channel_map import ChannelMapWidget

    root = imagexpress(tmp_path / "IX", names=("TL", "Hoechst", "Alexa 488", "Phalloidin"))
    applied = []
    w = ChannelMapWidget(MODEL, open_plate(root), on_apply=applied.append)
    qtbot.addWidget(w)
    assert {m: b.currentText() for m, b in w.boxes.items()} == {
        "DAPI": "Hoechst", "Actin": "Phalloidin", "GFP": "Alexa 488", "Brightfield": "TL"}
    assert [w.boxes["DAPI"].itemText(i) for i in range(4)] == ["TL", "Hoechst", "Alexa 488", "Phalloidin"]
    with qtbot.waitSignal(w.mapping_changed):
        w.boxes["GFP"].setCurrentText("TL")
    assert w.apply() is None and "chosen for more than one model channel" in w.status.text()
    w.boxes["GFP"].setCurrentText("Phalloidin")  # not the suggestion: the user's choice
    w.boxes["Actin"].setCurrentText("Alexa 488")
    plate = w.apply()
    assert plate.channel_names == ["Brightfield", "DAPI", "Actin", "GFP"] and applied == [plate]
    w.set_channels(MODEL, plate)  # the plate handed on comes back (session.plate_changed)
    assert w.mapping() == {"Hoechst": "DAPI", "Alexa 488": "Actin", "Phalloidin": "GFP", "TL": "Brightfield"}
    saved = w.save()
    assert saved == str(channel_map_path(root)) and load_channel_map(root) == w.mapping()
    # reopened with the saved map (as the Plate dock does), the widget shows the same choice
    w2 = ChannelMapWidget(MODEL, open_plate(root, channel_map=True))
    qtbot.addWidget(w2)
    assert w2.mapping() == w.mapping() and "saved beside the plate" in w2.status.text()
    assert w2.mapped_plate().channel_names == plate.channel_names


@pytest.mark.gui
def test_plate_dock_offers_z_and_time(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    _, dock = viewer.window.add_plugin_dock_widget("napari-pcim", "Plate")
    root = imagexpress(tmp_path / "IX", zs=3, tps=2)
    plate = dock.open_plate(root)
    assert not dock.planes_row.isHidden() and plate.planes["z"] == "max"
    assert [dock.z_box.itemText(i) for i in range(dock.z_box.count())] == ["max", "middle", "0", "1", "2"]
    dock.z_box.setCurrentText("2")
    dock.t_box.setValue(1)
    dock._reopen_planes()
    p = dock.session.plate
    assert p.planes == {"z": 2, "t": 1, "n_z": 3, "n_t": 2}
    assert p.read_field("B03")[0, 0, 0] == value(2, 3, 1, 1, 3, 2)
    flat = dock.open_plate(imagexpress(tmp_path / "flat"))
    assert flat is not None and dock.planes_row.isHidden()


@pytest.mark.gui
def test_model_dock_maps_instrument_channels_to_the_model(make_napari_viewer, qtbot, tmp_path):
    """A plate with channels w1..w4 and the bundled foci model: the Model dock offers the
    map, prefilled, and Apply makes the plate match the model (the check turns green)."""
    from napari_pcim._napari.widgets.model import ModelWidget
    from napari_pcim._napari.widgets.plate import PlateWidget
    from napari_pcim.classifier import bundled_model_path

    root = imagexpress(tmp_path / "IX", names=("w1", "w2", "w3", "w4"), htd=False)
    viewer = make_napari_viewer()
    plate_w, model_w = PlateWidget(viewer), ModelWidget(viewer)
    plate_w.open_plate(root)
    worker = model_w.load_model(bundled_model_path("foci_vgg"))
    with qtbot.waitSignal(worker.finished, timeout=60_000):
        pass
    qtbot.waitUntil(lambda: model_w.session.classifier is not None, timeout=10_000)
    assert "✗" in model_w.check_label.text() and not model_w.channel_map.isHidden()
    boxes = model_w.channel_map.boxes
    assert list(boxes) == ["DAPI", "Actin", "GFP", "Brightfield"]
    assert [b.currentText() for b in boxes.values()] == ["w1", "w2", "w3", "w4"]  # plate order
    model_w.channel_map.apply()
    assert model_w.session.plate.channel_names == ["DAPI", "Actin", "GFP", "Brightfield"]
    assert "✓" in model_w.check_label.text()
