"""Plate integrity (issue 15): a missing OME-Zarr chunk is an error naming it, never zeros."""

from __future__ import annotations

import numpy as np
import pytest

from napari_pcim import synth
from napari_pcim.plate_io import PlateError, open_plate


@pytest.fixture(scope="module")
def plate04(tmp_path_factory):
    """Our writer's NGFF 0.4 plate (zarr format 2, '.'-separated chunk keys)."""
    return synth.make_plate(
        tmp_path_factory.mktemp("p") / "p.zarr", fields=1, size=32, phenotype="foci", seed=1
    )


def test_missing_gfp_chunk_is_an_error_not_a_zero_plane(plate04):
    """Deleting the GFP plane's chunk used to give an all-zero GFP plane and exit 0."""
    plate = open_plate(plate04)
    gfp = plate.channel_names.index("GFP")
    array = plate04 / "B" / "3" / "0" / "0"
    assert plate.read_field("B03", 0)[gfp].any()
    (array / f"{gfp}.0.0").unlink()
    with pytest.raises(PlateError, match=rf"chunk {gfp}\.0\.0 is missing") as info:
        open_plate(plate04).read_field("B03", 0)
    assert str(array) in str(info.value)
    assert open_plate(plate04).read_field("B04", 0)[gfp].any()  # other wells still read


def test_missing_label_chunk_is_an_error_not_empty_ground_truth(plate04):
    """Deleting the ground-truth label chunk used to give an empty ground truth."""
    array = plate04 / "C" / "5" / "0" / "labels" / "gt" / "0"
    assert open_plate(plate04).read_labels("C05", 0)["gt"].shape == (32, 32)
    (array / "0.0").unlink()
    with pytest.raises(PlateError, match=r"chunk 0\.0 is missing") as info:
        open_plate(plate04).read_labels("C05", 0)
    assert str(array) in str(info.value)


def _one_well_plate(root, zarr_format: int, separator: str, ours: bool = True, data=None):
    """A one-well, one-field plate written by zarr itself: NGFF 0.5 (v3) or 0.4 (v2); with
    ``ours`` its root carries napari-pcim's attributes, as the plates napari-pcim writes."""
    import zarr

    def ome(meta: dict) -> dict:
        return {"ome": {"version": "0.5", **meta}} if zarr_format == 3 else {"version": "0.4", **meta}

    group = zarr.open_group(root, mode="w", zarr_format=zarr_format)
    if ours:
        group.attrs["napari_pcim"] = {"phenotype": "foci"}
    group.attrs.update(ome({"plate": {
        "rows": [{"name": "A"}], "columns": [{"name": "1"}],
        "wells": [{"path": "A/1", "rowIndex": 0, "columnIndex": 0}],
    }}))
    well = group.create_group("A").create_group("1")
    well.attrs.update(ome({"well": {"images": [{"path": "0"}]}}))
    image = well.create_group("0")
    axes = [{"name": "c", "type": "channel"}, {"name": "y", "type": "space"},
            {"name": "x", "type": "space"}]
    image.attrs.update(ome({"multiscales": [{"axes": axes, "datasets": [{"path": "s0"}]}]}))
    if data is None:
        data = np.arange(2 * 16 * 16, dtype=np.uint16).reshape(2, 16, 16) + 1
    encoding = {"name": "default" if zarr_format == 3 else "v2", "separator": separator}
    image.create_array("s0", data=data, chunks=(1, 8, 8), chunk_key_encoding=encoding)
    return data


@pytest.mark.parametrize(
    ("zarr_format", "separator", "key"),
    [(3, "/", "c/1/0/1"), (2, "/", "1/0/1"), (2, ".", "1.0.1")],
    ids=["ngff05-zarr-v3", "ngff04-zarr-v2-slash", "ngff04-zarr-v2-dot"],
)
def test_missing_chunk_named_in_v2_and_v3_plates(tmp_path, zarr_format, separator, key):
    """Each chunk key scheme: the missing chunk's key is named; intact plates read exactly."""
    root = tmp_path / "plate.zarr"
    data = _one_well_plate(root, zarr_format, separator)
    assert np.array_equal(open_plate(root).read_field("A01", 0), data)
    (root / "A" / "1" / "0" / "s0" / key).unlink()
    with pytest.raises(PlateError, match=f"chunk {key} is missing"):
        open_plate(root).read_field("A01", 0)


@pytest.mark.parametrize("zarr_format", [3, 2])
def test_a_plate_from_another_writer_may_skip_empty_chunks(tmp_path, zarr_format):
    """zarr 3 skips chunks that hold only the fill value (an empty tile, an empty label
    image), as the zarr specification allows; such a plate from another writer used to be
    refused as incomplete. It reads with the fill value there."""
    import zarr

    root = tmp_path / "plate.zarr"
    data = np.arange(2 * 16 * 16, dtype=np.uint16).reshape(2, 16, 16) + 1
    data[1, :8, :8] = 0  # one chunk of zeros: not written
    with zarr.config.set({"array.write_empty_chunks": False}):
        _one_well_plate(root, zarr_format, "/", ours=False, data=data)
    key = "c/1/0/0" if zarr_format == 3 else "1/0/0"
    assert not (root / "A" / "1" / "0" / "s0" / key).exists()
    assert np.array_equal(open_plate(root).read_field("A01", 0), data)


def _exported_ome_tiff(path):
    from napari_pcim.export import write_annotated_field

    rng = np.random.default_rng(0)
    channels = {n: rng.integers(0, 4000, (64, 64)).astype(np.uint16) for n in ("DAPI", "GFP")}
    return write_annotated_field(path, channels=channels)


@pytest.mark.parametrize("keep", [0.5, 0.9])
def test_truncated_ome_tiff_is_refused_not_read_as_one_channel(tmp_path, keep):
    """A truncated OME-TIFF used to open through bioio's tifffile fallback as 1 channel."""
    data = _exported_ome_tiff(tmp_path / "whole.ome.tif").read_bytes()
    cut = tmp_path / "cut.ome.tif"
    cut.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(PlateError, match="cut.ome.tif.*(truncated|corrupt)"):
        open_plate(cut)
    assert open_plate(tmp_path / "whole.ome.tif").channel_names == ["DAPI", "GFP"]


def test_truncated_plain_tiff_is_refused(tmp_path):
    import tifffile

    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, np.ones((3, 64, 64), dtype=np.uint16))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 4000])  # the last page's pixels are cut off
    with pytest.raises(PlateError, match="stack.tif: truncated or corrupt TIFF"):
        open_plate(path)
