"""The command line's refusals and its one error boundary (issue 15).

User errors are one line ``napari-pcim <command>: error: …`` naming the path or option,
exit 2; bugs keep their traceback, ask for a report and exit 1; Ctrl-C exits 130.
"""

from __future__ import annotations

import errno
import shutil

import pytest

from napari_pcim.cli.main import main

RISE = ["--method", "rise", "--set", "n_masks=16", "--set", "batch_size=16"]


@pytest.fixture(scope="module")
def plates(tmp_path_factory):
    root = tmp_path_factory.mktemp("clierr")
    for name, seed in (("p.zarr", 4), ("p2.zarr", 5)):
        assert main(["make-plate", str(root / name), "--fields", "1", "--size", "64", "--seed", str(seed)]) == 0
    return root / "p.zarr", root / "p2.zarr"


def _error_line(capsys, command: str) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    err = [line for line in err if "it/s]" not in line and "field/s]" not in line and "field]" not in line]
    assert len(err) == 1 and "Traceback" not in err[0], err
    assert err[0].startswith(f"napari-pcim {command}: error: "), err
    return err[0]


def test_second_plate_into_one_store_is_refused(plates, tmp_path, capsys):
    p, p2 = plates
    store = tmp_path / "R.zarr"
    assert main(["explain", str(p), "--model", "foci_vgg", "--wells", "B11", "--out", str(store), *RISE]) == 0
    capsys.readouterr()
    assert main(["explain", str(p2), "--model", "foci_vgg", "--wells", "B11,B12", "--out", str(store), *RISE]) == 2
    line = _error_line(capsys, "explain")
    assert "plate" in line and str(p2) in line
    assert not (store / "B" / "12").exists()


def test_train_refuses_an_existing_out_without_overwrite(tmp_path, capsys):
    out = tmp_path / "model.pt"
    out.write_bytes(b"an earlier model")
    assert main(["train", "--out", str(out), "--epochs", "1", "--n-train", "4"]) == 2
    assert "--overwrite" in _error_line(capsys, "train") and out.read_bytes() == b"an earlier model"


def test_train_overwrite_refuses_a_file_of_another_kind(tmp_path, capsys):
    out = tmp_path / "notes.pt"
    out.write_text("my notes, not a model")
    assert main(["train", "--out", str(out), "--overwrite", "--epochs", "1", "--n-train", "4"]) == 2
    assert "not a napari-pcim model" in _error_line(capsys, "train")
    assert out.read_text() == "my notes, not a model"


def test_explain_overwrite_refuses_a_foreign_directory(plates, tmp_path, capsys):
    out = tmp_path / "maps.ome.zarr"
    out.mkdir()
    (out / "thesis.docx").write_text("years of work")
    argv = ["explain", str(plates[0]), "--model", "foci_vgg", "--wells", "B03", "--out", str(out),
            "--overwrite", *RISE]
    assert main(argv) == 2
    assert "not a napari-pcim export" in _error_line(capsys, "explain")
    assert (out / "thesis.docx").read_text() == "years of work"
    shutil.rmtree(out)
    assert main(argv) == 0  # our own export is replaced with --overwrite
    capsys.readouterr()
    assert main(argv) == 0


def test_make_plate_overwrite_refuses_a_foreign_directory(tmp_path, capsys):
    out = tmp_path / "data"
    out.mkdir()
    (out / "raw.tif").write_bytes(b"precious")
    assert main(["make-plate", str(out), "--fields", "1", "--size", "64", "--overwrite"]) == 2
    assert "not a napari-pcim plate" in _error_line(capsys, "make-plate")
    assert (out / "raw.tif").read_bytes() == b"precious"


@pytest.mark.parametrize("kind", ["train", "explain-field", "explain-store"])
def test_out_inside_the_input_plate_is_refused(plates, capsys, kind):
    p = plates[0]
    argv = {
        "train": ["train", "--plate", str(p), "--out", str(p / "m.pt"), "--epochs", "1"],
        "explain-field": ["explain", str(p), "--model", "foci_vgg", "--wells", "B03",
                          "--out", str(p / "x.ome.tif"), *RISE],
        "explain-store": ["explain", str(p), "--model", "foci_vgg", "--wells", "B03",
                          "--out", str(p / "R.zarr"), *RISE],
    }[kind]
    assert main(argv) == 2
    assert "inside" in _error_line(capsys, argv[0])
    assert not any((p / n).exists() for n in ("m.pt", "x.ome.tif", "R.zarr"))


def test_store_path_that_is_a_regular_file_is_named(plates, tmp_path, capsys):
    out = tmp_path / "R.zarr"
    out.write_text("a file")
    assert main(["explain", str(plates[0]), "--model", "foci_vgg", "--all-wells", "--out", str(out), *RISE]) == 2
    assert "is a file" in _error_line(capsys, "explain") and out.read_text() == "a file"


@pytest.mark.parametrize("flags", [["--epochs", "0"], ["--epochs", "-1"], ["--n-train", "0"]])
def test_train_counts_below_one_are_refused(tmp_path, capsys, flags):
    out = tmp_path / "m.pt"
    assert main(["train", "--out", str(out), *flags]) == 2
    line = _error_line(capsys, "train")
    assert flags[0] in line and ">= 1" in line and not out.exists()


def test_all_wells_with_wells_is_refused(plates, tmp_path, capsys):
    out = tmp_path / "R.zarr"
    assert main(["explain", str(plates[0]), "--model", "foci_vgg", "--all-wells", "--wells", "B03",
                 "--out", str(out), *RISE]) == 2
    assert "--all-wells" in _error_line(capsys, "explain") and not out.exists()


@pytest.mark.parametrize("wells", [["--all-wells"], ["--wells", "B03"]])
def test_fields_a_well_lacks_are_refused(plates, tmp_path, capsys, wells):
    out = tmp_path / "R.zarr"
    assert main(["explain", str(plates[0]), "--model", "foci_vgg", *wells, "--fields", "5",
                 "--out", str(out), *RISE]) == 2
    line = _error_line(capsys, "explain")
    assert "has 1 field(s)" in line and "no field 5" in line and not out.exists()


def _fail_with(monkeypatch, exc: BaseException) -> None:
    """make-plate's core call raises ``exc``: the fault the boundary must sort."""
    import napari_pcim.synth

    def boom(*args, **kwargs):
        raise exc

    monkeypatch.setattr(napari_pcim.synth, "make_plate", boom)


def _disk_full() -> OSError:
    try:
        with open("/dev/full", "wb") as fh:
            fh.write(b"x" * 100)
    except OSError as exc:
        return exc
    pytest.skip("/dev/full is not available")


@pytest.mark.parametrize(
    ("make_exc", "expected"),
    [
        (_disk_full, "disk full"),
        (lambda: OSError("81920 requested and 76744 written"), "disk full"),
        (lambda: OSError(errno.EROFS, "Read-only file system", "/ro/out.zarr"), "/ro/out.zarr: read-only"),
        (lambda: PermissionError(errno.EACCES, "Permission denied", "/locked/out.zarr"), "permission denied"),
        (lambda: MemoryError("Unable to allocate 7.2 GiB"), "out of memory"),
        (lambda: __import__("torch").OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB"),
         "out of memory"),
    ],
)
def test_environment_errors_are_one_line(monkeypatch, tmp_path, capsys, make_exc, expected):
    _fail_with(monkeypatch, make_exc())
    out = tmp_path / "plate.zarr"
    assert main(["make-plate", str(out), "--fields", "1", "--size", "64"]) == 2
    line = _error_line(capsys, "make-plate")
    assert expected in line
    if expected == "disk full":
        assert str(out) in line and "free on that disk" in line


def test_a_bug_keeps_its_traceback_and_asks_for_a_report(monkeypatch, tmp_path, capsys):
    _fail_with(monkeypatch, TypeError("unsupported operand"))
    assert main(["make-plate", str(tmp_path / "p.zarr"), "--fields", "1", "--size", "64"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "TypeError: unsupported operand" in err
    assert "please report it at https://github.com/napari-pcim/napari-pcim/issues" in err


def test_ctrl_c_exits_130_with_the_rerun_summary(plates, tmp_path, monkeypatch, capsys):
    from napari_pcim.batch import runner

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "process_field", interrupted)
    assert main(["explain", str(plates[0]), "--model", "foci_vgg", "--wells", "B03",
                 "--out", str(tmp_path / "R.zarr"), *RISE]) == 130
    assert "rerun the same command" in capsys.readouterr().out


@pytest.fixture()
def broken_plate(plates, tmp_path):
    plate = shutil.copytree(plates[0], tmp_path / "broken.zarr")
    chunk = next(p for p in sorted((plate / "B" / "3" / "0" / "0").iterdir()) if not p.name.startswith("."))
    chunk.write_bytes(b"not a blosc chunk" * 4)
    return plate


def test_a_failing_field_stops_the_run_with_one_line(broken_plate, tmp_path, capsys):
    argv = ["explain", str(broken_plate), "--model", "foci_vgg", "--wells", "B03,B04",
            "--out", str(tmp_path / "R.zarr"), *RISE]
    assert main(argv) == 2
    assert "B03 f0: " in _error_line(capsys, "explain")


def test_skip_failed_lists_the_failed_fields_and_exits_2(broken_plate, tmp_path, capsys):
    argv = ["explain", str(broken_plate), "--model", "foci_vgg", "--wells", "B03,B04",
            "--out", str(tmp_path / "R.zarr"), "--skip-failed", *RISE]
    assert main(argv) == 2
    out = capsys.readouterr().out
    assert "1 field(s) failed" in out and "B03 f0: " in out and "1/2 fields complete" in out


@pytest.mark.slow
def test_dask_worker_errors_are_one_line_without_remote_traceback(broken_plate, tmp_path, capsys):
    pytest.importorskip("distributed")
    argv = ["explain", str(broken_plate), "--model", "foci_vgg", "--wells", "B03",
            "--out", str(tmp_path / "R.zarr"), "--workers", "1", *RISE]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "napari-pcim explain: error: B03 f0: " in err


def test_overwrite_recognises_what_napari_pcim_wrote(plates, tmp_path):
    from napari_pcim.classifier import bundled_model_path
    from napari_pcim.cli.outputs import is_ours

    assert is_ours(bundled_model_path("foci_vgg"), "model")
    assert is_ours(plates[0], "plate") and not is_ours(plates[0], "export")
    (tmp_path / "zip.pt").write_bytes(b"PK\x05\x06" + b"\0" * 18)  # an empty zip: not ours
    assert not is_ours(tmp_path / "zip.pt", "model")
    (tmp_path / "x.ome.tif").write_bytes(b"not a tiff")
    assert not is_ours(tmp_path / "x.ome.tif", "export")
