"""``bench io``: the big-plate writer (small here) and the figures it prints. No timing asserts."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from napari_pcim.bench.io import disk_usage, make_big_plate
from napari_pcim.cli.bench_io import add_io_parser, bench_io
from napari_pcim.plate_io import PlateError, open_plate


@pytest.fixture(scope="module")
def plate(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench_io") / "bench.zarr"
    return make_big_plate(out, plate_format=384, fields=3, size=256, channels=5, n_wells=2)


def test_bench_plate_is_a_legitimate_plate_of_shared_chunks(plate):
    p = open_plate(plate)
    assert p.wells == ["A01", "A02"] and (len(p.rows), len(p.columns)) == (16, 24)  # a 384 layout
    assert [p.n_fields(w) for w in p.wells] == [3, 3]
    assert p.channel_names == ["DAPI", "Actin", "GFP", "Brightfield", "Mito"]
    first, last = p.read_field("A01", 0), p.read_field("A02", 2)
    assert first.shape == (5, 256, 256) and first.dtype == np.uint16 and first.std() > 0
    np.testing.assert_array_equal(first, last)  # every field shares the template's chunks
    nominal = 6 * first.nbytes
    assert disk_usage(plate) < nominal  # hard links: the chunks are on disk once
    attrs = json.loads((plate / "A" / "2" / "2" / ".zattrs").read_text())
    assert attrs["multiscales"][0]["name"] == "A02 f2"


def test_missing_chunk_of_the_bench_plate_is_still_refused(plate, tmp_path):
    import shutil

    copy = tmp_path / "damaged.zarr"
    shutil.copytree(plate, copy)
    (copy / "A" / "2" / "1" / "0" / "3.0.0").unlink()
    p = open_plate(copy)
    with pytest.raises(PlateError, match=r"chunk 3\.0\.0 is missing"):
        p.read_field("A02", 1)
    assert p.read_field("A02", 2).shape == (5, 256, 256)


def test_bench_io_prints_sane_figures(plate, capsys):
    parser = argparse.ArgumentParser()
    add_io_parser(parser.add_subparsers(dest="bench"))
    args = parser.parse_args(["io", "--plate", str(plate), "--methods", "input_x_gradient", "--json"])
    code = bench_io(args)
    result = json.loads(capsys.readouterr().out)
    assert code == 0, result["targets_met"]
    o = result["open"]
    assert (o["wells"], o["fields"], o["field_shape"]) == (2, 6, [5, 256, 256])
    assert 0 < o["open_s"] < 60 and 10 < o["open_peak_rss_mib"] < 4096
    (row,) = result["explain"]
    assert row["method"] == "input_x_gradient" and row["map_shape"][-2:] == [256, 256]
    assert row["finite"] and row["field_mode"] == "tile" and row["tile"] == [128, 128]
    assert row["explain_peak_rss_mib"] > row["peak_rss_before_explain_mib"] > 50
    assert result["disk_mib"] > 0


def test_bench_io_table(plate, capsys):
    from napari_pcim.cli.bench_io import format_table

    o = {"wells": 2, "fields": 6, "field_shape": [5, 256, 256], "field_dtype": "uint16",
         "nominal_gb": 0.0, "open_s": 0.5, "import_s": 0.3, "list_fields_s": 0.0,
         "open_peak_rss_mib": 50.0, "read_field_s": 0.01}
    row = {"method": "pcim", "explain_peak_rss_mib": 5000.0, "seconds": 3.0, "device": "cpu",
           "options": {"steps": 1}, "field_mode": "tile", "tile": [128, 128]}
    table = format_table({"plate": str(plate), "open": o, "explain": [row], "disk_mib": 1.0,
                          "targets": {"open_s": 2.0, "open_peak_rss_mib": 1024.0, "explain_peak_rss_mib": 4096.0},
                          "targets_met": {"open_s": True, "open_peak_rss_mib": True, "explain_peak_rss_mib": False}})
    assert "target < 2 s: yes" in table and "target < 4096 MiB: NO" in table and "steps=1" in table
