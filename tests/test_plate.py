"""Tests of plate writing (synth.make_plate) and reading (plate.open_plate) on real files."""

from __future__ import annotations

import csv
import shutil

import numpy as np
import pytest
import tifffile

from napari_pcim import synth
from napari_pcim.plate_io import Plate, PlateError, ZarrPlateWriter, open_plate


@pytest.fixture(scope="module")
def plates(tmp_path_factory):
    root = tmp_path_factory.mktemp("plates")
    z = synth.make_plate(root / "demo.zarr", fields=2, size=32, phenotype="foci", seed=5)
    t = synth.make_plate(
        root / "demo_tiff", fields=2, size=32, phenotype="foci", seed=5, layout="tiff"
    )
    return z, t


def test_plate_map_layout():
    rows = synth.make_plate_map(96, seed=0)
    assert len(rows) == 96 and rows[0]["well"] == "A01" and rows[-1]["well"] == "H12"
    by_col = {}
    for r in rows:
        by_col.setdefault(int(str(r["well"])[1:]), []).append(r)
    assert all(
        r["condition"] == "DMSO" and r["phenotype"] == "control" for c in (1, 2) for r in by_col[c]
    )
    assert all(r["phenotype"] == "treated" for c in (11, 12) for r in by_col[c])
    compounds = [r for c in range(3, 11) for r in by_col[c]]
    assert all(str(r["condition"]).startswith("CPD-") for r in compounds)
    assert round(0.3 * len(compounds)) == sum(r["phenotype"] == "treated" for r in compounds)
    edges = {str(r["well"]) for r in rows if r["edge"]}
    assert {"A05", "H05", "C01", "C12"} <= edges and "C05" not in edges and len(edges) == 36
    assert len(synth.make_plate_map(384, seed=0)) == 384
    assert synth.make_plate_map(96, seed=1) != rows  # hits are seeded


def test_zarr_plate_metadata(plates):
    z, _ = plates
    p = open_plate(z)
    assert isinstance(p, Plate) and p.kind == "zarr" and p.plate_format == 96
    assert p.rows == list("ABCDEFGH") and p.columns == list(range(1, 13))
    assert len(p.wells) == 96 and p.n_fields("B03") == 2
    assert p.channel_names == list(synth.CHANNELS)
    assert p.pixel_size == pytest.approx((0.65, 0.65))
    with open(z / "plate_map.csv", newline="") as fh:
        pm = {r["well"]: r for r in csv.DictReader(fh)}
    assert p.conditions == {w: r["condition"] for w, r in pm.items()}
    assert p.phenotypes == {w: r["phenotype"] for w, r in pm.items()}
    field = p.read_field("B03", 1)
    assert field.shape == (4, 32, 32) and field.dtype == np.uint16
    labels = p.read_labels("B03", 1)
    assert set(labels) == {"gt", "nuclei", "cells"} and labels["cells"].dtype == np.int32
    # Treated wells carry ground truth, control wells none.
    assert sum(p.read_labels(w, 0)["gt"].sum() for w in ("A11", "B12", "C11")) > 0
    assert all(p.read_labels(w, f)["gt"].sum() == 0 for w in ("A01", "B02") for f in (0, 1))


def test_zarr_conditions_recovered_from_attributes_without_csv(plates, tmp_path):
    z, _ = plates
    copy = tmp_path / "copy.zarr"
    shutil.copytree(z, copy)
    (copy / "plate_map.csv").unlink()
    p = open_plate(copy)
    assert p.conditions["A01"] == "DMSO" and p.phenotypes["A12"] == "treated"


def test_tiff_and_zarr_read_back_identical(plates):
    z, t = plates
    pz, pt = open_plate(z), open_plate(t)
    assert pt.kind == "tiff" and pt.wells == pz.wells and pt.channel_names == pz.channel_names
    assert pt.pixel_size == pytest.approx(pz.pixel_size)
    assert pt.conditions == pz.conditions and pt.phenotypes == pz.phenotypes
    for well in ("A01", "B03", "D07", "H12"):
        for f in range(2):
            assert np.array_equal(pz.read_field(well, f), pt.read_field(well, f))
            lz, lt = pz.read_labels(well, f), pt.read_labels(well, f)
            assert set(lz) == set(lt)
            for k in lz:
                assert lz[k].dtype == lt[k].dtype and np.array_equal(lz[k], lt[k])


def test_generated_fields_match_generator(plates):
    z, _ = plates
    p = open_plate(z)
    # Plates are deterministic: rebuilding gives the same arrays.
    assert np.array_equal(p.read_field("C04", 0), open_plate(z).read_field("C04", 0))
    names = sorted(x.name for x in plates[1].iterdir())
    assert "demo_tiff_B03_s1_w1.tif" in names and "demo_tiff_B03_s2_w4.tif" in names
    assert "plate_map.csv" in names and "demo_tiff.HTD" in names
    assert (plates[1] / "labels" / "demo_tiff_B03_s1_gt.tif").is_file()


def test_bioio_reads_zarr_field(plates):
    from bioio import BioImage
    from bioio_ome_zarr import Reader

    z, _ = plates
    img = BioImage(z / "B" / "3" / "0", reader=Reader)
    assert list(img.channel_names) == list(synth.CHANNELS)
    assert img.physical_pixel_sizes.X == pytest.approx(0.65)
    data = img.get_image_data("CYX")
    assert np.array_equal(data, open_plate(z).read_field("B03", 0))


def test_make_plate_refuses_overwrite_and_is_atomic(tmp_path):
    out = tmp_path / "p.zarr"
    out.mkdir()
    with pytest.raises(FileExistsError, match="overwrite=True"):
        synth.make_plate(out, size=32, fields=1)

    calls = []

    def failing_progress(done, total):
        calls.append((done, total))
        if done == 5:
            raise RuntimeError("disk full")

    target = tmp_path / "q.zarr"
    with pytest.raises(RuntimeError, match="disk full"):
        synth.make_plate(target, size=32, fields=1, progress=failing_progress)
    assert not target.exists()
    assert sorted(x.name for x in tmp_path.iterdir()) == ["p.zarr"]  # no temp folder left
    assert calls[0] == (1, 96)

    # overwrite=True replaces the old folder in one step.
    synth.make_plate(out, size=32, fields=1, layout="tiff", overwrite=True, phenotype="worms")
    p = open_plate(out)
    assert p.kind == "tiff" and set(p.read_labels("A01", 0)) == {"gt", "worms"}


def _tiff(path, shape=(16, 16), value=1):
    tifffile.imwrite(path, np.full(shape, value, np.uint16))


def test_bbbc_and_operetta_names_and_custom_pattern(tmp_path):
    bbbc = tmp_path / "bbbc"
    bbbc.mkdir()
    guid = "9E84F49F-1B25-4E7E-8040-D1BB2D7E73EA"
    for well in ("A01", "B12"):
        for ch in (1, 2):
            _tiff(bbbc / f"1649_1109_0003_Amp5-1_B_20070424_{well}_w{ch}_{guid}.tif", value=ch)
    p = open_plate(bbbc, channel_names=["Brightfield", "GFP"])
    assert p.wells == ["A01", "B12"] and p.n_fields("A01") == 1
    assert p.channel_names == ["Brightfield", "GFP"] and p.pixel_size is None
    assert p.read_field("B12", 0)[:, 0, 0].tolist() == [1, 2]

    op = tmp_path / "operetta"
    op.mkdir()
    for f in (1, 2):
        for ch in (1, 2, 3):
            _tiff(op / f"r02c03f{f:02d}p01-ch{ch}sk1fk1fl1.tiff", value=10 * f + ch)
    p = open_plate(op)
    assert p.wells == ["B03"] and p.n_fields("B03") == 2 and p.channel_names == ["ch1", "ch2", "ch3"]
    assert p.read_field("B03", 1)[:, 0, 0].tolist() == [21, 22, 23]

    custom = tmp_path / "custom"
    custom.mkdir()
    for ch in ("1", "2"):
        _tiff(custom / f"exp-well_C07-pos3-ch{ch}.tif")
    p = open_plate(custom, pattern=r"well_(?P<well>[A-H]\d\d)-pos(?P<site>\d)-ch(?P<channel>\d)")
    assert p.wells == ["C07"] and p.read_field("C07", 0).shape == (2, 16, 16)


def test_ome_tiff_scenes_become_fields(tmp_path):
    from bioio import BioImage

    path = tmp_path / "scenes.ome.tif"
    rng = np.random.default_rng(0)
    with tifffile.TiffWriter(path, ome=True) as tw:
        for name in ("Well B03 Field 1", "Well B03 Field 2", "Well C05 Field 1"):
            data = rng.integers(0, 1000, (3, 24, 24), dtype=np.uint16)
            tw.write(
                data,
                photometric="minisblack",
                metadata={
                    "axes": "CYX",
                    "Name": name,
                    "Channel": {"Name": ["DAPI", "Actin", "GFP"]},
                    "PhysicalSizeX": 0.65,
                    "PhysicalSizeY": 0.65,
                },
            )
    p = open_plate(path)
    assert p.kind == "bioio" and p.wells == ["B03", "C05"] and p.n_fields("B03") == 2
    assert p.channel_names == ["DAPI", "Actin", "GFP"] and p.pixel_size == pytest.approx(
        (0.65, 0.65)
    )
    with tifffile.TiffFile(path) as tf:
        second = tf.series[1].asarray()
    assert np.array_equal(p.read_field("B03", 1), second)
    assert p.read_labels("B03", 0) == {}
    # An already-open BioImage is accepted too (duck-typed).
    q = open_plate(BioImage(path))
    assert q.wells == ["B03", "C05"] and np.array_equal(
        q.read_field("C05", 0), p.read_field("C05", 0)
    )


def test_plate_map_argument_overrides(tmp_path, plates):
    _, t = plates
    pm = tmp_path / "map.csv"
    pm.write_text("well,condition,phenotype,edge\nB03,drug X,treated,False\n")
    p = open_plate(t, plate_map=pm)
    assert p.conditions == {"B03": "drug X"} and p.phenotypes == {"B03": "treated"}
    bad = tmp_path / "bad.csv"
    bad.write_text("position,compound\nB03,x\n")
    with pytest.raises(PlateError, match=r"bad\.csv.*lacks column\(s\) well, condition"):
        open_plate(t, plate_map=bad)


# ------------------------------------------------------------------------- errors


def test_error_missing_and_unreadable(tmp_path):
    with pytest.raises(PlateError, match=r"nope\.zarr: no such file"):
        open_plate(tmp_path / "nope.zarr")
    junk = tmp_path / "junk.ome.tif"
    junk.write_bytes(b"this is not a tiff")
    with pytest.raises(PlateError, match=r"junk\.ome\.tif: not a readable image file"):
        open_plate(junk)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(PlateError, match="no .tif/.tiff files"):
        open_plate(empty)
    with pytest.raises(PlateError, match="cannot open a plate from a int"):
        open_plate(3)


def test_error_channel_counts_differ_between_fields(tmp_path, plates):
    _, t = plates
    folder = tmp_path / "tiff"
    shutil.copytree(t, folder)
    (folder / "demo_tiff_D07_s2_w4.tif").unlink()
    with pytest.raises(
        PlateError, match=r"field D07 s2 has channel\(s\) \[1, 2, 3\] \(3\) but field A01 s1"
    ):
        open_plate(folder)

    # zarr: one field with a different channel count is named with the first read field.
    root = tmp_path / "mixed.zarr"
    w = ZarrPlateWriter(
        root,
        name="mixed",
        rows=["A"],
        columns=[1, 2],
        wells=["A01", "A02"],
        n_fields=1,
        channel_names=["a", "b"],
        pixel_size=0.5,
    )
    w.write_field("A01", 0, np.zeros((2, 8, 8), np.uint16), {})
    w.channel_names = ["a", "b", "c"]
    w.write_field("A02", 0, np.zeros((3, 8, 8), np.uint16), {})
    p = open_plate(root)
    p.read_field("A01", 0)
    with pytest.raises(PlateError, match=r"field A02 f0 has 3 channel\(s\) but field A01 f0 has 2"):
        p.read_field("A02", 0)


def test_error_pattern_matches_nothing(tmp_path):
    folder = tmp_path / "odd"
    folder.mkdir()
    _tiff(folder / "image_0001.tif")
    with pytest.raises(
        PlateError, match=r"odd: no file name matches the pattern .*e\.g\. 'image_0001\.tif'"
    ):
        open_plate(folder)
    _tiff(folder / "x_B03_s1_w1.tif")
    with pytest.raises(
        PlateError, match=r"odd: no file name matches the pattern '_\(\?P<well>Z99\)"
    ):
        open_plate(folder, pattern=r"_(?P<well>Z99)_(?P<channel>\d)")
    with pytest.raises(PlateError, match="needs named groups 'channel' and 'well'"):
        open_plate(folder, pattern=r"_(?P<well>[A-H]\d\d)_")
    with pytest.raises(PlateError, match="invalid filename pattern"):
        open_plate(folder, pattern=r"(?P<well>")


def test_error_unknown_well_or_field(plates):
    p = open_plate(plates[0])
    with pytest.raises(PlateError, match=r"demo\.zarr: no well 'Z99'"):
        p.read_field("Z99", 0)
    with pytest.raises(PlateError, match=r"well B03 has 2 field\(s\) \(0-based\), no field 2"):
        p.read_field("B03", 2)
    with pytest.raises(PlateError, match="not a well name"):
        p.read_labels("B-3", 0)
    with pytest.raises(PlateError, match=r"2 channel name\(s\) given .* fields have 4"):
        open_plate(plates[1], channel_names=["a", "b"])


def test_ngff_05_zarr_v3_plate_is_read(tmp_path):
    """A minimal NGFF 0.5 plate written with zarr itself (zarr format 3, metadata under "ome")."""
    import zarr

    root = zarr.open_group(tmp_path / "v3.zarr", mode="w", zarr_format=3)
    root.attrs["ome"] = {
        "version": "0.5",
        "plate": {
            "rows": [{"name": "C"}],
            "columns": [{"name": "4"}],
            "wells": [{"path": "C/4", "rowIndex": 0, "columnIndex": 0}],
        },
    }
    well = root.create_group("C").create_group("4")
    well.attrs["ome"] = {"version": "0.5", "well": {"images": [{"path": "0"}, {"path": "1"}]}}
    data = np.arange(2 * 3 * 1 * 8 * 8, dtype=np.uint16).reshape(2, 3, 1, 8, 8)  # t c z y x
    for i in range(2):
        img = well.create_group(str(i))
        img.attrs["ome"] = {
            "version": "0.5",
            "multiscales": [
                {
                    "axes": [
                        {"name": "t", "type": "time"},
                        {"name": "c", "type": "channel"},
                        {"name": "z", "type": "space"},
                        {"name": "y", "type": "space"},
                        {"name": "x", "type": "space"},
                    ],
                    "datasets": [
                        {
                            "path": "s0",
                            "coordinateTransformations": [
                                {"type": "scale", "scale": [1, 1, 2.0, 0.325, 0.325]}
                            ],
                        }
                    ],
                }
            ],
            "omero": {"channels": [{"label": "Hoechst"}, {"label": "GFP"}, {"label": "BF"}]},
        }
        img.create_array("s0", data=data + i)
    p = open_plate(tmp_path / "v3.zarr")
    assert p.wells == ["C04"] and p.n_fields("C04") == 2
    assert p.channel_names == ["Hoechst", "GFP", "BF"] and p.pixel_size == pytest.approx(
        (0.325, 0.325)
    )
    assert np.array_equal(p.read_field("C04", 1), data[0, :, 0] + 1)
    assert p.read_labels("C04", 0) == {} and p.conditions == {}
