"""Every export napari-pcim writes re-opens through its own npe2 reader as the same layers.

A real explained field (the foci demo field, explained by the bundled ``foci_vgg`` with
PCIM) is exported as OME-TIFF and OME-Zarr, by the layers' writer (Export widget, File ▸
Save) and by ``napari-pcim explain --out``, then re-opened: same layer names and types,
channels and labels exact (values and dtype), maps float-equal, maps' metadata kept.
Also: a second export never replaces the first one's files without an explicit overwrite,
and every file is written with the umask's permissions.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest

from napari_pcim._napari import reader as _reader
from napari_pcim._napari.sample_data import SAMPLE_WELL, sample_field_layers
from napari_pcim._napari.writer import export_layer_data, metrics_path, write_layers
from napari_pcim.layers import KIND, result_layer_data

torch = pytest.importorskip("torch")

SUFFIXES = (".ome.tif", ".ome.zarr")


@pytest.fixture(scope="module")
def explained_layers():
    """The foci demo field's layers plus foci_vgg's PCIM map, as the Explain widget makes them."""
    from napari_pcim.classifier import bundled_model_path, load_classifier
    from napari_pcim.explainers import explain

    layers = sample_field_layers("foci")
    names = [kw["metadata"]["channel"] for _, kw, t in layers if t == "image"]
    image = np.stack([d for d, _, t in layers if t == "image"])
    clf = load_classifier(bundled_model_path("foci_vgg"), channels=names)
    attr = explain(clf, image, method="pcim", device="cpu", plate_channels=names, steps=3)
    maps = result_layer_data(attr, label="PCIM", well=SAMPLE_WELL, field=0,
                             scale=layers[0][1]["scale"], metadata={"model": "foci_vgg"})
    return layers + maps


def _by_name(layer_data):
    return {kw["name"]: (data, kw, kind) for data, kw, kind in layer_data}


def _reopen(path: Path):
    read = _reader.get_reader(str(path))
    assert callable(read), f"the reader declines its own export {path.name}"
    return read(str(path))


def _assert_same_layers(original, reopened):
    before, after = _by_name(original), _by_name(reopened)
    assert sorted(after) == sorted(before)
    for name, (data, kw, kind) in before.items():
        data2, kw2, kind2 = after[name]
        assert kind2 == kind, name
        if kw["metadata"].get(KIND) == "attribution":
            np.testing.assert_allclose(data2, data, rtol=0, atol=0, err_msg=name)
            for key in ("method", "target", "well", "field", "label", "model"):
                assert kw2["metadata"][key] == kw["metadata"][key], (name, key)
            assert kw2["colormap"] == kw["colormap"]
            assert tuple(kw2["contrast_limits"]) == pytest.approx(tuple(kw["contrast_limits"]))
        else:
            assert data2.dtype == data.dtype and np.array_equal(data2, data), name
            assert kw2.get("colormap") == kw.get("colormap"), name
        assert tuple(kw2["scale"]) == pytest.approx(tuple(kw["scale"]))


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_reader_reopens_its_own_layer_export(tmp_path, explained_layers, suffix):
    """The case of the issue: the reader refused its own OME-TIFF export."""
    out = tmp_path / f"B03_f0{suffix}"
    written = export_layer_data(out, explained_layers)
    assert written == [str(out), str(metrics_path(out))]
    reopened = _reopen(out)
    _assert_same_layers(explained_layers, reopened)
    assert [t for _, _, t in reopened].count("labels") == 3  # gt, nuclei, cells
    # re-exporting the re-opened layers gives the same file content again
    again = tmp_path / f"again{suffix}"
    export_layer_data(again, reopened)
    _assert_same_layers(explained_layers, _reopen(again))


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_reader_reopens_cli_export(tmp_path, suffix):
    """``napari-pcim explain --out`` files re-open with channels, the map and the labels."""
    from napari_pcim.cli.main import main
    from napari_pcim.plate_io import open_plate
    from napari_pcim.synth import make_plate

    plate = make_plate(tmp_path / "p.zarr", plate_format=96, fields=1, size=64)
    out = tmp_path / f"out{suffix}"
    assert main(["explain", str(plate), "--model", "foci_vgg", "--method", "pcim",
                 "--wells", "B03", "--fields", "0", "--set", "steps=2", "--out", str(out)]) == 0
    files = sorted(p for p in tmp_path.iterdir() if p.name.startswith("out"))
    assert len(files) == 1
    layers = _by_name(_reopen(files[0]))
    opened = open_plate(plate)
    raw = opened.read_field("B03", 0)
    for i, channel in enumerate(opened.channel_names):
        data, _, kind = layers[f"B03 · {channel}"]
        assert kind == "image" and data.dtype == raw.dtype and np.array_equal(data, raw[i])
    for lname, lab in opened.read_labels("B03", 0).items():
        data, kw, kind = next(v for v in layers.values() if v[1]["metadata"].get("label") == lname)
        assert kind == "labels" and np.array_equal(data, lab)
    (amap, kw, kind), = [v for v in layers.values() if v[1]["metadata"].get(KIND) == "attribution"]
    assert kind == "image" and kw["name"].startswith("PCIM · ") and kw["name"].endswith("B03 f0")
    assert kw["metadata"]["method"] == "pcim" and kw["metadata"]["well"] == "B03"
    assert kw["metadata"]["target"] in ("control", "treated") and amap.dtype == np.float32


@pytest.mark.gui
@pytest.mark.parametrize("suffix", SUFFIXES)
def test_open_file_reopens_export_in_viewer(make_napari_viewer, tmp_path, explained_layers,
                                             suffix):
    """File ▸ Open… with napari-pcim (napari asks which reader for a .tif) restores the layers."""
    out = tmp_path / f"B03_f0{suffix}"
    export_layer_data(out, explained_layers)
    viewer = make_napari_viewer()
    viewer.open(str(out), plugin="napari-pcim")
    names = {layer.name: type(layer).__name__ for layer in viewer.layers}
    assert names == {kw["name"]: kind.capitalize() for _, kw, kind in explained_layers}


def test_second_export_of_a_well_does_not_replace_the_first(tmp_path, explained_layers):
    """The case of the issue: a second export silently replaced the first one's metrics CSV."""
    tif, zarr_out = tmp_path / "B03_f0.ome.tif", tmp_path / "B03_f0.ome.zarr"
    export_layer_data(tif, explained_layers)
    first_csv = metrics_path(tif).read_bytes()
    export_layer_data(zarr_out, explained_layers)  # another format: its own CSV
    assert metrics_path(zarr_out) != metrics_path(tif)
    assert metrics_path(tif).read_bytes() == first_csv
    before = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    with pytest.raises(FileExistsError, match="B03_f0.ome.tif"):
        export_layer_data(tif, explained_layers)
    # a stray CSV of that name is refused too, before the image is written
    tif.unlink()
    with pytest.raises(FileExistsError, match=r"B03_f0\.ome\.tif\.metrics\.csv"):
        export_layer_data(tif, explained_layers)
    assert not tif.exists()
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()} == {
        k: v for k, v in before.items() if k != tif.name}
    # napari's save dialog asked about the image: the npe2 writer replaces it and its CSV
    assert write_layers(str(tif), explained_layers) == [str(tif), str(metrics_path(tif))]


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
@pytest.mark.parametrize("suffix", SUFFIXES)
def test_exports_get_umask_permissions(tmp_path, explained_layers, umask, suffix):
    """Every exported file (image, zarr chunks, metrics CSV) gets 0o666 less the umask."""
    old = os.umask(umask)
    try:
        written = export_layer_data(tmp_path / f"B03_f0{suffix}", explained_layers)
    finally:
        os.umask(old)
    files = [Path(p) for p in written if Path(p).is_file()]
    for root in (Path(p) for p in written if Path(p).is_dir()):
        files += [p for p in root.rglob("*") if p.is_file()]
    assert len(files) >= 2
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask, path
