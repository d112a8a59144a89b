"""Tests of the npe2 contributions: sample data, the reader and the shared layer styling."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import tifffile

from napari_pcim import synth
from napari_pcim._napari import reader as _reader
from napari_pcim._napari import sample_data as _sample_data
from napari_pcim.layers import field_layer_data

EXPECTED_COLORMAPS = {"DAPI": "blue", "Actin": "green", "GFP": "magenta", "Brightfield": "gray"}


@pytest.mark.parametrize(
    ("func", "phenotype", "instances"),
    [
        (_sample_data.sample_foci, "foci", ["nuclei", "cells"]),
        (_sample_data.sample_translocation, "translocation", ["nuclei", "cells"]),
        (_sample_data.sample_worms, "worms", ["worms"]),
    ],
)
def test_sample_layers(func, phenotype, instances):
    layers = func()
    names = [kw["name"] for _, kw, _ in layers]
    assert names == [f"B03 · {c}" for c in synth.CHANNELS] + [f"B03 · GT {phenotype}"] + [
        f"B03 · {n}" for n in instances
    ]
    for data, kw, kind in layers[:4]:
        channel = kw["name"].split(" · ")[1]
        assert kind == "image" and data.shape == (256, 256) and data.dtype == np.uint16
        assert kw["colormap"] == EXPECTED_COLORMAPS[channel] and kw["blending"] == "additive"
        assert kw["scale"] == (0.65, 0.65)
        lo, hi = kw["contrast_limits"]
        assert lo == pytest.approx(np.percentile(data, 0.5)) and hi == pytest.approx(
            np.percentile(data, 99.8)
        )
    gt, kw, kind = layers[4]
    assert kind == "labels" and gt.dtype == np.uint8 and gt.sum() > 0
    assert kw["metadata"]["napari_pcim"]["kind"] == "gt"
    # Deterministic: the demo field is the same every call.
    assert np.array_equal(func()[2][0], layers[2][0])


def test_field_layer_data_names_fields_and_checks_channels():
    img = np.zeros((2, 8, 8), np.uint16)
    layers = field_layer_data(img, {}, ["Hoechst", "mCherry"], None, "C05", field=1)
    assert [kw["name"] for _, kw, _ in layers] == ["C05 f1 · Hoechst", "C05 f1 · mCherry"]
    assert [kw["colormap"] for _, kw, _ in layers] == [
        "blue",
        "green",
    ]  # known name, then by position
    assert layers[0][1]["scale"] == (1.0, 1.0) and layers[0][1]["contrast_limits"] == (0.0, 1.0)
    with pytest.raises(ValueError, match=r"3 channel name\(s\) for a field with 2 channel"):
        field_layer_data(img, {}, ["a", "b", "c"], None, "C05")


@pytest.mark.parametrize("layout", ["zarr", "tiff"])
def test_reader_opens_generated_plates(tmp_path, layout):
    out = synth.make_plate(
        tmp_path / ("p.zarr" if layout == "zarr" else "p"),
        fields=1,
        size=32,
        layout=layout,
        phenotype="translocation",
    )
    reader = _reader.get_reader(str(out))
    assert callable(reader)
    layers = reader(str(out))
    names = [kw["name"] for _, kw, _ in layers]
    assert names[:4] == [f"A01 · {c}" for c in synth.CHANNELS]
    assert set(names[4:]) == {"A01 · GT translocation", "A01 · nuclei", "A01 · cells"}
    from napari_pcim.plate_io import open_plate

    assert np.array_equal(layers[0][0], open_plate(out).read_field("A01", 0)[0])
    assert layers[0][1]["scale"] == pytest.approx((0.65, 0.65))


def test_reader_opens_ome_tiff_and_declines_others(tmp_path):
    path = tmp_path / "field.ome.tif"
    data = np.arange(2 * 16 * 16, dtype=np.uint16).reshape(2, 16, 16)
    tifffile.imwrite(
        path, data, ome=True, metadata={"axes": "CYX", "Channel": {"Name": ["DAPI", "GFP"]}}
    )
    layers = _reader.get_reader(str(path))(str(path))
    assert [kw["name"] for _, kw, _ in layers] == ["A01 · DAPI", "A01 · GFP"]
    assert np.array_equal(layers[1][0], data[1])

    (tmp_path / "notes.txt").write_text("hello")
    plain = tmp_path / "plain.tif"
    tifffile.imwrite(plain, data[0])
    assert _reader.get_reader(str(tmp_path / "notes.txt")) is None
    assert _reader.get_reader(str(plain)) is None  # not .ome.tif: left to other readers
    assert _reader.get_reader(str(tmp_path / "missing.zarr")) is None
    assert _reader.get_reader(str(tmp_path)) is None  # a folder without a plate
    assert _reader.get_reader([str(path), str(path)]) is None


def test_reader_claims_instrument_plates_index_files_and_imagej_stacks(tmp_path):
    from instrument_layouts import cellvoyager, harmony, imagexpress, imagexpress_jdce

    ix = imagexpress(tmp_path / "IX", zs=2)
    ph = harmony(tmp_path / "phenix")
    cv = cellvoyager(tmp_path / "cv")
    jd = imagexpress_jdce(tmp_path / "acq")
    for path, first in ((jd, "B03 · DAPI"), (jd / "acq.jdce", "B03 · DAPI"),(ix, "B03 · DAPI"), (ix / "PLATE.HTD", "B03 · DAPI"),
                        (ph, "B03 · HOECHST 33342"), (ph / "Images" / "Index.idx.xml", "B03 · HOECHST 33342"),
                        (cv, "B03 · DAPI"), (cv / "MeasurementData.mlf", "B03 · DAPI")):
        reader = _reader.get_reader(str(path))
        assert callable(reader), path
        layers = reader(str(path))
        assert layers[0][1]["name"] == first, path
    # a broken instrument plate is claimed: its error is shown, not passed on
    (ph / "Images" / "r02c03f01p01-ch1sk1fk1fl1.tiff").unlink()
    assert _reader.get_reader(str(ph)).__name__ == "reader" and _reader._claims(ph)
    stack = tmp_path / "cells.tif"
    tifffile.imwrite(stack, np.ones((4, 8, 8), np.uint16), imagej=True, metadata={"axes": "CYX"})
    layers = _reader.get_reader(str(stack))(str(stack))
    assert [kw["name"] for _, kw, _ in layers] == [f"A01 · C{i}" for i in range(4)]


def test_manifest_reader_patterns_reach_the_plugin(tmp_path):
    from npe2 import PluginManager

    pm = PluginManager.instance()
    pm.discover()
    for name in ("a.HTD", "MeasurementData.mlf", "Index.idx.xml", "x.jdce", "y.TIF", "p.zarr"):
        readers = {r.command for r in pm.iter_compatible_readers([str(tmp_path / name)])}
        assert "napari-pcim.get_reader" in readers, name


@pytest.mark.gui
def test_open_sample_in_viewer(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-pcim", "foci")
    names = [layer.name for layer in viewer.layers]
    assert "B03 · DAPI" in names and "B03 · GT foci" in names and "B03 · cells" in names
    assert viewer.layers["B03 · GFP"].blending == "additive"
    assert tuple(viewer.layers["B03 · DAPI"].scale) == pytest.approx((0.65, 0.65))
    out = synth.make_plate(tmp_path / "v.zarr", fields=1, size=32)
    viewer.open(str(out), plugin="napari-pcim")
    assert "A01 · GT foci" in [layer.name for layer in viewer.layers]


def _broken_files(tmp_path):
    """A corrupt OME-TIFF, an NGFF plate with unreadable metadata and one with a missing chunk."""
    corrupt = tmp_path / "corrupt.ome.tif"
    corrupt.write_bytes(b"II*\x00" + bytes(range(256)) * 8)
    chunk = synth.make_plate(tmp_path / "chunk.zarr", fields=1, size=32, seed=3)
    bad_json = shutil.copytree(chunk, tmp_path / "bad_json.zarr")
    (bad_json / "A" / "1" / ".zattrs").write_text("{not json")
    (chunk / "A" / "1" / "0" / "0" / "1.0.0").unlink()  # the first well's second channel
    return {"corrupt.ome.tif": (corrupt, "corrupt.ome.tif"),
            "bad NGFF metadata": (bad_json, "unreadable zarr metadata"),
            "missing chunk": (chunk, "chunk 1.0.0 is missing")}


def test_reader_given_broken_files_shows_one_error_and_no_layer(make_napari_viewer, tmp_path):
    """A broken file of napari-pcim's kind: an error notification, not a traceback or zeros."""
    from napari.utils.notifications import NotificationSeverity, notification_manager

    viewer = make_napari_viewer()
    for name, (path, expected) in _broken_files(tmp_path).items():
        start = len(notification_manager.records)
        assert viewer.open(str(path), plugin="napari-pcim") == [], name
        errors = [n.message for n in notification_manager.records[start:]
                  if n.severity == NotificationSeverity.ERROR]
        assert len(errors) == 1 and expected in errors[0] and str(path) in errors[0], (name, errors)
    assert len(viewer.layers) == 0
