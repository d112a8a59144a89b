"""The ``napari-pcim`` command line: make-plate, explain (per field and whole plate), --set, progress."""

from __future__ import annotations

import csv
import sys

import pytest

from napari_pcim.cli.main import main
from napari_pcim.cli.progress import console_progress

RISE = ["--method", "rise", "--set", "n_masks=16", "--set", "batch_size=16"]


@pytest.fixture(scope="module")
def plate(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "plate.zarr"
    assert main(["make-plate", str(out), "--fields", "2", "--size", "64", "--seed", "4"]) == 0
    return out


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    return err[0]


def test_make_plate_refuses_an_existing_out(plate, capsys):
    assert main(["make-plate", str(plate), "--fields", "1", "--size", "64"]) == 2
    assert "already exists" in _error_line(capsys)


def test_explain_fields_writes_one_file_per_field(plate, tmp_path, capsys):
    out = tmp_path / "maps.ome.tif"
    argv = ["explain", str(plate), "--model", "foci_vgg", "--wells", "b03,C05", "--fields", "1",
            "--out", str(out), *RISE]
    assert main(argv) == 0
    stdout = capsys.readouterr().out
    assert "B03 f1:" in stdout and "C05 f1:" in stdout
    assert (tmp_path / "maps_B03_f1.ome.tif").is_file() and (tmp_path / "maps_C05_f1.ome.tif").is_file()
    assert main(argv) == 2  # the outputs exist now
    assert "--overwrite" in _error_line(capsys)


def test_explain_whole_plate_store_and_resume(plate, tmp_path, capsys):
    store = tmp_path / "result.zarr"
    argv = ["explain", str(plate), "--model", "foci_vgg", "--wells", "B03,C05", "--fields", "0",
            "--out", str(store), *RISE]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "2/2 fields complete" in captured.out and "rise fields" in captured.err
    with open(store.with_suffix(".csv"), newline="") as fh:
        assert [(r["well"], r["field"]) for r in csv.DictReader(fh)] == [("B03", "0"), ("C05", "0")]
    assert main(argv) == 0
    assert "(0 now, 2 from an earlier run)" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("pair", "named"),
    [("steps=2.5", "steps"), ("steps=abc", "steps"), ("lr=nan", "lr"), ("bogus=1", "bogus"),
     ("steps", "KEY=VALUE"), ("rise:grid=[4]", "grid"), ("rise:grid=1000", "grid")],
)
def test_bad_set_option_is_one_line_naming_it(plate, tmp_path, capsys, pair, named):
    method, _, pair = pair.rpartition(":")
    argv = ["explain", str(plate), "--model", "foci_vgg", "--wells", "B03",
            "--method", method or "pcim", "--out", str(tmp_path / "x.ome.tif"), "--set", pair]
    assert main(argv) == 2
    line = _error_line(capsys)
    assert line.startswith("napari-pcim explain: error:") and named in line
    assert not (tmp_path / "x.ome.tif").exists()


@pytest.mark.parametrize(("fields", "message"), [("a", "--fields"), ("5", "no field 5")])
def test_bad_fields_are_named(plate, tmp_path, capsys, fields, message):
    argv = ["explain", str(plate), "--model", "foci_vgg", "--wells", "B03", "--fields", fields,
            "--out", str(tmp_path / "x.ome.tif")]
    assert main(argv) == 2
    assert message in _error_line(capsys)


def test_method_choices_come_from_the_explainers(capsys):
    from napari_pcim.explainers import COMPARISON_METHODS, METHODS

    with pytest.raises(SystemExit) as exc:
        main(["explain", "p.zarr", "--model", "m", "--out", "o.ome.tif", "--method", "nope"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert all(repr(m) in err for m in METHODS + COMPARISON_METHODS)


def test_console_progress_follows_a_changing_total(capsys):
    with console_progress("work", unit="field") as progress:
        progress(0, 0)
        progress(2, 4)
        progress(5, 5)
    err = capsys.readouterr().err
    assert "work" in err and "5/5" in err


def test_building_the_parser_imports_no_torch():
    import subprocess

    code = ("import sys\nfrom napari_pcim.cli.main import build_parser\n"
            "build_parser().format_help()\nprint('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_explain_per_channel_prints_channel_importance_and_exports_channel_maps(plate, tmp_path, capsys):
    import json
    import re

    out = tmp_path / "maps.ome.zarr"
    argv = ["explain", str(plate), "--model", "foci_vgg", "--wells", "C05", "--fields", "0",
            "--target", "treated", "--per-channel", "--out", str(out), "--method", "input_x_gradient"]
    assert main(argv) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if "channels:" in x)
    shares = dict(re.findall(r"(\w+) (\d\.\d\d)", line.split("channels:")[1]))
    assert list(shares) == ["DAPI", "Actin", "GFP", "Brightfield"], line
    assert sum(map(float, shares.values())) == pytest.approx(1.0, abs=0.03), line
    labels = [c["label"] for c in json.loads((out / ".zattrs").read_text())["omero"]["channels"]]
    assert "Input×Gradient · treated" in labels
    assert [x for x in labels if x.startswith("Input×Gradient · treated · ")] == [
        f"Input×Gradient · treated · {c}" for c in shares]


def test_explain_whole_plate_per_channel_has_importance_columns(plate, tmp_path, capsys):
    store = tmp_path / "result.zarr"
    argv = ["explain", str(plate), "--model", "foci_vgg", "--wells", "B03,C05", "--fields", "0",
            "--per-channel", "--out", str(store), *RISE]
    assert main(argv) == 0
    with open(store.with_suffix(".csv"), newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [k for k in rows[0] if k.startswith("importance_")] == [
        "importance_DAPI", "importance_Actin", "importance_GFP", "importance_Brightfield"]
