"""``napari-pcim explain`` reads instrument plates as asked: z plane or projection, time
point and channel map, from the command line or from the map saved beside the plate, and
records the choice with the results (per-field exports and whole-plate stores)."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")

from gui_plate import TinyNet
from instrument_layouts import imagexpress

from napari_pcim.batch import ResultStore
from napari_pcim.classifier import save_classifier
from napari_pcim.cli.main import main
from napari_pcim.export import read_annotated_field


@pytest.fixture()
def plate_and_model(tmp_path):
    torch.manual_seed(0)
    root = imagexpress(tmp_path / "IX", names=("w1", "w2"), zs=3, sites=1, htd=False)
    meta = {"channels": ["DAPI", "GFP"], "input_size": [8, 8],
            "normalization": {"mean": [5000.0, 5000.0], "std": [3000.0, 3000.0]},
            "classes": ["control", "treated"], "field_mode": "resize"}
    return root, save_classifier(TinyNet(2).eval(), meta, tmp_path / "m.pt")


def test_without_a_map_the_refusal_names_the_missing_channel(plate_and_model, tmp_path, capsys):
    root, model = plate_and_model
    rc = main(["explain", str(root), "--model", str(model), "--wells", "B03",
               "--method", "input_x_gradient", "--out", str(tmp_path / "x.ome.tif")])
    err = capsys.readouterr().err
    assert rc == 2 and "DAPI" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_channel_map_and_z_plane_are_used_and_recorded(plate_and_model, tmp_path):
    root, model = plate_and_model
    out = tmp_path / "x.ome.tif"
    rc = main(["explain", str(root), "--model", str(model), "--wells", "B03", "--method",
               "input_x_gradient", "--channel-map", "w1=DAPI,w2=GFP", "--save-channel-map",
               "--z", "2", "--out", str(out)])
    assert rc == 0
    field = read_annotated_field(out)
    reading = field.metadata["reading"]
    assert reading["z"] == 2 and reading["channel_map"] == {"w1": "DAPI", "w2": "GFP"}
    # the plane asked for (the constant pixel value encodes z = 3 in the instrument's counting)
    assert int(field.channels["DAPI"].max()) == 2 * 1000 + 3 * 100 + 10 + 1 + 3 * 3000 + 20000

    # the saved map is reused by a whole-plate run, which records it in its store
    rc = main(["explain", str(root), "--model", str(model), "--all-wells", "--method",
               "input_x_gradient", "--z", "max", "--out", str(tmp_path / "res.zarr")])
    assert rc == 0
    store = ResultStore.open(tmp_path / "res.zarr")
    assert store.meta["reading"]["channel_map"] == {"w1": "DAPI", "w2": "GFP"}
    assert store.meta["reading"]["z"] == "max"
    assert {r["well"] for r in store.records} == {"B03", "D07"}
    # another plane is another job: the same store refuses to mix them
    rc = main(["explain", str(root), "--model", str(model), "--all-wells", "--method",
               "input_x_gradient", "--z", "0", "--out", str(tmp_path / "res.zarr")])
    assert rc == 2
    json.dumps(store.meta)  # the recorded reading is plain JSON
