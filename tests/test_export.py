"""write_annotated_field: OME-TIFF and OME-Zarr round trips through bioio, atomic writes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import zarr
from bioio import BioImage

from napari_pcim.export import LAYERS_KEY, write_annotated_field


def _content(seed: int = 0):
    rng = np.random.default_rng(seed)
    channels = {
        "DAPI": rng.integers(0, 65536, (30, 40), dtype=np.uint16),  # full uint16 range
        "GFP": rng.integers(0, 65536, (30, 40), dtype=np.uint16),
    }
    maps = {"PCIM · treated": rng.random((30, 40)).astype(np.float32)}
    labels = {"gt": (rng.random((30, 40)) > 0.5).astype(np.uint8),
              "nuclei": rng.integers(0, 300, (30, 40)).astype(np.int32)}
    return channels, maps, labels


@pytest.mark.parametrize("suffix", [".ome.tif", ".ome.tiff", ".ome.zarr"])
def test_round_trip(tmp_path, suffix):
    channels, maps, labels = _content()
    path = write_annotated_field(tmp_path / f"field{suffix}", channels=channels, maps=maps,
                                 labels=labels, pixel_size=(0.65, 0.5), metadata={"method": "pcim"})
    img = BioImage(path)
    assert list(img.channel_names) == ["DAPI", "GFP", "PCIM · treated"]
    data = img.get_image_data("CYX")
    assert data.dtype == np.float32
    np.testing.assert_array_equal(data[0], channels["DAPI"].astype(np.float32))
    np.testing.assert_array_equal(data[1], channels["GFP"].astype(np.float32))
    np.testing.assert_array_equal(data[2], maps["PCIM · treated"])
    assert img.physical_pixel_sizes.Y == pytest.approx(0.65)
    assert img.physical_pixel_sizes.X == pytest.approx(0.5)
    if suffix == ".ome.zarr":
        root = zarr.open_group(str(path), mode="r")
        assert root.attrs["napari_pcim"] == {"method": "pcim"}
        assert list(root["labels"].attrs["labels"]) == ["gt", "nuclei"]
        np.testing.assert_array_equal(root["labels/nuclei/0"][...], labels["nuclei"])
    else:
        img.set_scene(1)
        assert list(img.channel_names) == ["gt", "nuclei"]
        lab = img.get_image_data("CYX")
        np.testing.assert_array_equal(lab[0], labels["gt"])
        np.testing.assert_array_equal(lab[1], labels["nuclei"])
    # nothing but the output is left in the folder (the temporary sibling is gone)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


@pytest.mark.parametrize("suffix", [".ome.tif", ".ome.zarr"])
def test_refuses_existing_unless_overwrite(tmp_path, suffix):
    channels, maps, _ = _content(0)
    path = tmp_path / f"f{suffix}"
    write_annotated_field(path, channels=channels, maps=maps)
    with pytest.raises(FileExistsError, match="already exists; pass overwrite=True"):
        write_annotated_field(path, channels=channels)
    new, _, _ = _content(1)
    write_annotated_field(path, channels=new, overwrite=True)
    img = BioImage(path)
    assert list(img.channel_names) == ["DAPI", "GFP"]
    np.testing.assert_array_equal(img.get_image_data("CYX")[0], new["DAPI"].astype(np.float32))
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


def test_metadata_in_tiff_description(tmp_path):
    import tifffile

    channels, maps, _ = _content()
    path = write_annotated_field(tmp_path / "m.ome.tif", channels=channels, maps=maps,
                                 metadata={"model": "foci_vgg", "seed": 0})
    with tifffile.TiffFile(path) as tif:
        descriptions = [img.find("{*}Description") for img in _ome_images(tif.ome_metadata)]
    document = json.loads(descriptions[0].text)
    assert document["napari_pcim"] == {"model": "foci_vgg", "seed": 0}
    assert document[LAYERS_KEY]["channels"] == {"DAPI": "uint16", "GFP": "uint16"}
    assert list(document[LAYERS_KEY]["maps"]) == ["PCIM · treated"]


def _ome_images(xml: str):
    import xml.etree.ElementTree as ET

    return ET.fromstring(xml).findall("{*}Image")


def test_bad_input(tmp_path):
    channels, maps, labels = _content()
    with pytest.raises(ValueError, match="unsupported output name"):
        write_annotated_field(tmp_path / "f.png", channels=channels)
    with pytest.raises(ValueError, match=r"map 'bad' has shape \(3, 3\)"):
        write_annotated_field(tmp_path / "f.ome.tif", channels=channels, maps={"bad": np.zeros((3, 3))})
    with pytest.raises(ValueError, match="label 'gt' has shape"):
        write_annotated_field(tmp_path / "f.ome.tif", channels=channels, labels={"gt": np.zeros((3, 3), int)})
    with pytest.raises(ValueError, match="nothing to write"):
        write_annotated_field(tmp_path / "f.ome.zarr", channels={})
    with pytest.raises(FileNotFoundError, match="does not exist"):
        write_annotated_field(tmp_path / "no" / "f.ome.tif", channels=channels)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("suffix", [".ome.tif", ".ome.zarr"])
def test_export_to_read_only_folder_names_the_path(tmp_path, suffix):
    """Was a traceback naming a hidden temp sibling; now an OSError naming the output."""
    from faults import read_only_folder

    out = read_only_folder(tmp_path) / f"field{suffix}"
    channels, maps, labels = _content()
    with pytest.raises(OSError) as info:
        write_annotated_field(out, channels=channels, maps=maps, labels=labels)
    assert info.value.filename == str(out) and str(out) in str(info.value)
    assert not out.exists()


@pytest.mark.parametrize("suffix", [".ome.tif", ".ome.zarr"])
def test_export_to_full_disk_names_the_path_and_leaves_nothing(tmp_path, suffix):
    """Disk full mid-write: an OSError naming the output (OME-TIFF: 'disk full'), no temp left."""
    from faults import disk_full_after, listing

    noise = np.random.default_rng(0).random((2, 256, 256))  # incompressible: 256 kB a plane
    out = tmp_path / f"field{suffix}"
    with disk_full_after(20_000), pytest.raises(OSError) as info:
        write_annotated_field(out, channels={"DAPI": noise[0], "GFP": noise[1]})
    assert str(out) in str(info.value)
    if suffix == ".ome.tif":
        assert "disk full" in str(info.value)
    assert listing(tmp_path) == []
