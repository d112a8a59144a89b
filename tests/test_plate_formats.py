"""Instrument layouts read by open_plate: ImageXpress, Opera/Operetta, CellVoyager, BBBC005,
Cellomics, ImageJ TIFFs; z planes and time points; clear refusals. Fixtures: instrument_layouts."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from instrument_layouts import cellvoyager, harmony, imagexpress, imagexpress_jdce, plane, value

from napari_pcim.plate_io import PlateError, open_plate


def px(p, well, field=0):
    return p.read_field(well, field)[:, 0, 0].tolist()


def test_imagexpress_nested_timepoints_zsteps_upper_case(tmp_path):
    root = imagexpress(tmp_path / "IX", zs=3, tps=2)
    p = open_plate(root)
    assert p.channel_names == ["DAPI", "FITC"] and p.wells == ["B03", "D07"]
    assert p.n_fields("D07") == 2 and p.metadata["layout"] == "ImageXpress/MetaXpress"
    # default: maximum projection over the ZStep planes (not MetaXpress's projection file)
    assert p.planes == {"z": "max", "t": 0, "n_z": 3, "n_t": 2}
    assert px(p, "D07", 1) == [value(4, 7, 2, 1, 3, 1), value(4, 7, 2, 2, 3, 1)]
    p = open_plate(root, z=0, t=1, channel_map="FITC=GFP")
    assert p.read_record() == {"z": 0, "t": 1, "n_z": 3, "n_t": 2, "channel_map": {"FITC": "GFP"}}
    assert px(p, "B03") == [value(2, 3, 1, 1, 1, 2), value(2, 3, 1, 2, 1, 2)]
    assert px(open_plate(root, z="middle"), "B03")[0] == value(2, 3, 1, 1, 2, 1)
    with pytest.raises(PlateError, match=r"IX: no z plane 3; the plate has 3 \(0-based\)"):
        open_plate(root, z=3)
    with pytest.raises(PlateError, match=r"no time point 5; the plate has 2"):
        open_plate(root, t=5)
    with pytest.raises(PlateError, match=r"z plane 'top': expected a 0-based plane index"):
        open_plate(root, z="top")


def test_imagexpress_flat_single_site_names_from_metaseries(tmp_path):
    # PLATE_B03_s1_w1.tif without an HTD: names from the MetaSeries XML in each TIFF.
    root = tmp_path / "flat"
    for ch, illum in ((1, "DAPI"), (2, "Texas Red")):
        desc = (f'<MetaData><PlaneInfo><prop id="_IllumSetting_" type="string" value="{illum}"/>'
                "</PlaneInfo></MetaData>")
        plane(value(2, 3, 1, ch), root / f"PLATE_B03_s1_w{ch}.tif", description=desc)
    p = open_plate(root)
    assert p.channel_names == ["DAPI", "Texas Red"] and p.wells == ["B03"]
    assert px(p, "B03") == [value(2, 3, 1, 1), value(2, 3, 1, 2)]
    # no HTD and no MetaSeries: the wavelength numbers
    bare = imagexpress(tmp_path / "bare", htd=False, nested=False, ext=".tif", guid=False)
    assert open_plate(bare).channel_names == ["w1", "w2"]


def test_imagexpress_jdce_round_trip_through_bioio_imagexpress(tmp_path):
    from bioio import BioImage
    from bioio_imagexpress import Reader

    root = imagexpress_jdce(tmp_path / "acq")
    img = BioImage(root / "acq.jdce", reader=Reader)
    assert list(img.channel_names) == ["DAPI", "TexasRed"] and len(img.scenes) == 2
    p = open_plate(root)
    assert p.kind == "bioio" and p.wells == ["B03"] and p.n_fields("B03") == 2
    assert p.channel_names == ["DAPI", "TexasRed"] and p.pixel_size == pytest.approx((0.68, 0.68))
    assert px(p, "B03", 1) == [value(2, 3, 2, 1), value(2, 3, 2, 2)]


@pytest.mark.parametrize("index", ["Index.idx.xml", "Index.xml"])
def test_harmony_index(tmp_path, index):
    root = harmony(tmp_path / "phenix", index=index)
    p = open_plate(root)
    assert p.channel_names == ["HOECHST 33342", "Alexa 488"] and p.wells == ["B03"]
    assert p.n_fields("B03") == 2 and p.pixel_size == pytest.approx((0.65, 0.65))
    assert p.planes["n_z"] == 3 and px(p, "B03", 1) == [value(2, 3, 2, 1, 3), value(2, 3, 2, 2, 3)]
    assert px(open_plate(root, z=0), "B03") == [value(2, 3, 1, 1, 1), value(2, 3, 1, 2, 1)]


def test_operetta_bare_names_with_planes(tmp_path):
    # No index: the r02c03f01p01-ch1sk1fk1fl1 names, three planes each (was: "two files for ...").
    root = harmony(tmp_path / "op", names=("a", "b", "c"))
    (root / "Images" / "Index.idx.xml").unlink()
    p = open_plate(root / "Images")
    assert p.channel_names == ["ch1", "ch2", "ch3"] and p.planes["n_z"] == 3
    assert px(p, "B03", 0) == [value(2, 3, 1, c, 3) for c in (1, 2, 3)]
    assert px(open_plate(root / "Images", z=1), "B03")[0] == value(2, 3, 1, 1, 2)


def test_cellvoyager_mlf_mrf(tmp_path):
    root = cellvoyager(tmp_path / "cv", zs=2)
    p = open_plate(root)
    assert p.channel_names == ["DAPI", "GFP"] and p.wells == ["B03", "C05"]
    assert p.n_fields("C05") == 2 and p.pixel_size == pytest.approx((0.325, 0.325))
    assert px(p, "C05", 1) == [value(3, 5, 2, 1, 2), value(3, 5, 2, 2, 2)]
    assert p.metadata["layout"].startswith("CellVoyager")
    # without the .mes settings file: channel numbers
    assert open_plate(cellvoyager(tmp_path / "cv2", mes=False)).channel_names == ["ch1", "ch2"]


def test_bbbc005_focus_level_is_not_a_well(tmp_path):
    root = tmp_path / "BBBC005"
    for well, c, f in (("A05", 18, 1), ("B07", 5, 23)):
        for ch in (1, 2):
            plane(ch, root / f"SIMCEPImages_{well}_C{c}_F{f}_s01_w{ch}.TIF")
    p = open_plate(root)
    assert p.wells == ["A05", "B07"] and p.channel_names == ["w1", "w2"]
    assert px(p, "B07") == [1, 2] and p.metadata["layout"] == "BBBC005"


def test_cellomics_names(tmp_path):
    root = tmp_path / "cellomics"
    for f in (0, 1):
        for d in (0, 1, 2):
            plane(10 * f + d, root / f"MFGTMP_140206180002_A01f{f:02d}d{d}.TIF")
    p = open_plate(root)
    assert p.wells == ["A01"] and p.n_fields("A01") == 2 and p.channel_names == ["d0", "d1", "d2"]
    assert px(p, "A01", 1) == [10, 11, 12]


def test_named_channels_in_custom_pattern(tmp_path):
    root = tmp_path / "sbs"
    for ch in ("DAPI", "GFP"):
        plane(1, root / f"plate1_B02_site1_{ch}.tif")
    p = open_plate(root, pattern=r"_(?P<well>[A-P]\d\d)_site(?P<site>\d+)_(?P<channel>[A-Za-z]+)\.tif")
    assert p.channel_names == ["DAPI", "GFP"] and p.wells == ["B02"]


def test_imagej_hyperstack_opens_as_one_field(tmp_path):
    f = tmp_path / "cells.tif"
    tifffile.imwrite(f, np.arange(4 * 64, dtype=np.uint16).reshape(4, 8, 8), imagej=True,
                     metadata={"axes": "CYX"})
    p = open_plate(f)
    assert p.wells == ["A01"] and p.read_field("A01", 0).shape == (4, 8, 8)
    assert p.channel_names == ["C0", "C1", "C2", "C3"]


def test_unmatched_folder_refusal_names_patterns_example_and_formats(tmp_path):
    root = tmp_path / "odd"
    plane(1, root / "scan-0001.TIF")
    with pytest.raises(PlateError) as e:
        open_plate(root)
    msg = str(e.value)
    assert "\n" not in msg and "scan-0001.TIF" in msg and "r(?P<row>" in msg
    assert "Opera/Operetta" in msg and "CellVoyager" in msg and "pattern=" in msg


def test_index_listing_a_missing_file_is_refused(tmp_path):
    root = harmony(tmp_path / "ph")
    (root / "Images" / "r02c03f01p02-ch2sk1fk1fl1.tiff").unlink()
    with pytest.raises(PlateError, match=r"Index\.idx\.xml: lists r02c03f01p02-ch2sk1fk1fl1\.tiff"):
        open_plate(root)


def _zarr_5d_plate(root, shape=(2, 2, 3, 8, 8)):
    """A minimal NGFF 0.4 plate (zarr format 2), one well B03, one TCZYX image: pixel = 100t+10c+z+1 (no chunk equals the fill value)."""
    import zarr

    g = zarr.open_group(str(root), mode="w", zarr_format=2)
    g.attrs["plate"] = {"version": "0.4", "rows": [{"name": "B"}], "columns": [{"name": "3"}],
                        "wells": [{"path": "B/3", "rowIndex": 0, "columnIndex": 0}]}
    well = g.create_group("B").create_group("3")
    well.attrs["well"] = {"version": "0.4", "images": [{"path": "0"}]}
    img = well.create_group("0")
    axes = [{"name": "t", "type": "time"}, {"name": "c", "type": "channel"}] + [
        {"name": a, "type": "space", "unit": "micrometer"} for a in "zyx"]
    img.attrs["multiscales"] = [{"version": "0.4", "axes": axes, "datasets": [{"path": "0", "coordinateTransformations": [
        {"type": "scale", "scale": [1, 1, 2, 0.5, 0.5]}]}]}]
    t, c, z = np.meshgrid(*(np.arange(n) for n in shape[:3]), indexing="ij")
    data = np.broadcast_to((100 * t + 10 * c + z + 1)[..., None, None], shape).astype(np.uint16)
    img.create_array("0", data=np.ascontiguousarray(data), chunks=(1, 1, 1, 8, 8))
    return root


def test_zarr_plate_z_and_time_choice(tmp_path):
    root = _zarr_5d_plate(tmp_path / "tz.zarr")
    p = open_plate(root)
    assert p.planes == {"z": "middle", "t": 0, "n_z": 3, "n_t": 2} and px(p, "B03") == [2, 12]
    p = open_plate(root, z="max", t=1)
    assert p.planes["z"] == "max" and px(p, "B03") == [103, 113]
    assert px(open_plate(root, z=0), "B03") == [1, 11]
    with pytest.raises(PlateError, match="no z plane 3"):
        open_plate(root, z=3)


def test_timepoint_folder_opened_itself_finds_the_htd_above(tmp_path):
    root = imagexpress(tmp_path / "IX")
    p = open_plate(root / "TimePoint_1")
    assert p.channel_names == ["DAPI", "FITC"] and p.wells == ["B03", "D07"]


def test_cellprofiler_sbs_example_names(tmp_path):
    root = tmp_path / "ExampleSBSImages"
    for i, (r, c) in enumerate((("A", 1), ("B", 12)), 1):
        for ch in (1, 2):
            plane(10 * i + ch, root / f"Channel{ch}-{i:02d}-{r}-{c:02d}.tif")
    p = open_plate(root)
    assert p.wells == ["A01", "B12"] and p.channel_names == ["Channel1", "Channel2"]
    assert px(p, "B12") == [21, 22] and p.metadata["layout"] == "CellProfiler SBS"
