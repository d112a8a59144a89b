"""NGFF metadata: plates and exports written by napari-pcim validate with ome-zarr-models."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pydantic
import pytest
import zarr
from ome_zarr_models.v04 import HCS, Image, ImageLabel, Well

from napari_pcim import synth
from napari_pcim.export import write_annotated_field
from napari_pcim.plate_io import ZarrPlateWriter, ngff, open_plate


@pytest.fixture(scope="module")
def small_plate(tmp_path_factory):
    root = tmp_path_factory.mktemp("ngff") / "p.zarr"
    w = ZarrPlateWriter(
        root, name="p", rows=["A", "B"], columns=[1, 2, 3], wells=["A01", "B03"], n_fields=2,
        channel_names=synth.CHANNELS, pixel_size=0.65, extra_attrs={"napari_pcim": {"x": 1}},
    )
    for well in ("A01", "B03"):
        for f in range(2):
            fld = synth.generate_field("foci", True, size=32, seed=f)
            w.write_field(well, f, fld.image, fld.labels)
    return root


def test_written_plate_validates_as_ngff_hcs(small_plate):
    hcs = HCS.from_zarr(zarr.open_group(str(small_plate), mode="r"))
    plate = hcs.attributes.plate
    assert [r.name for r in plate.rows] == ["A", "B"] and plate.field_count == 2
    assert [w.path for w in plate.wells] == ["A/1", "B/3"]
    well = Well.from_zarr(zarr.open_group(str(small_plate / "B" / "3"), mode="r"))
    assert [im.path for im in well.attributes.well.images] == ["0", "1"]
    image = Image.from_zarr(zarr.open_group(str(small_plate / "B" / "3" / "1"), mode="r"))
    ms = image.attributes.multiscales[0]
    assert [a.name for a in ms.axes] == ["c", "y", "x"] and ms.name == "B03 f1"
    assert ms.datasets[0].coordinateTransformations[0].scale == [1.0, 0.65, 0.65]
    assert [c.label for c in image.attributes.omero.channels] == list(synth.CHANNELS)
    gt = ImageLabel.from_zarr(zarr.open_group(str(small_plate / "B/3/1/labels/gt"), mode="r"))
    assert gt.attributes.image_label.colors[0].rgba == (255, 255, 0, 255)
    # The project's own reader agrees.
    p = open_plate(small_plate)
    assert p.wells == ["A01", "B03"] and p.metadata == {"x": 1}
    assert set(p.read_labels("A01", 1)) == {"gt", "nuclei", "cells"}


def test_exported_ome_zarr_validates_as_ngff_image(tmp_path):
    rng = np.random.default_rng(0)
    path = write_annotated_field(
        tmp_path / "f.ome.zarr", channels={"GFP": rng.random((16, 20))},
        maps={"PCIM · treated": rng.random((16, 20))}, labels={"gt": np.ones((16, 20), int)},
    )
    image = Image.from_zarr(zarr.open_group(str(path), mode="r"))
    assert [c.label for c in image.attributes.omero.channels] == ["GFP", "PCIM · treated"]
    assert all(a.unit is None for a in image.attributes.multiscales[0].axes)  # no pixel size
    ImageLabel.from_zarr(zarr.open_group(str(path / "labels" / "gt"), mode="r"))


def test_bad_metadata_fails_when_built():
    with pytest.raises(pydantic.ValidationError, match="color"):
        ngff.omero_channel("GFP", "green", (0, 1, 0, 1))
    with pytest.raises(pydantic.ValidationError):
        ngff.plate_attrs("p", ["A"], [1], ["A01"], n_fields=0)


def test_reading_plates_does_not_import_the_ngff_models():
    code = (
        "import sys, napari_pcim.plate_io\n"
        "assert 'ome_zarr_models' not in sys.modules and 'pydantic' not in sys.modules\n"
        "from napari_pcim.plate_io import ZarrPlateWriter\n"
        "assert 'ome_zarr_models' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
