"""Result-store faults (issue 15): a second plate, relative paths, temp leftovers,
failing fields (``skip_failed``), non-finite output and strict JSON."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
import torch

from napari_pcim import atomic
from napari_pcim.batch import (
    BatchJob,
    FieldError,
    ResultStore,
    StoreMismatchError,
    read_records,
    run_plate,
    write_csv,
)
from napari_pcim.classifier import save_classifier
from napari_pcim.plate_io import open_plate
from napari_pcim.synth import make_plate
from napari_pcim.vocabulary import DEMO_CHANNELS, DEMO_CLASSES


class MarkerMean(torch.nn.Module):
    """Logit of 'treated' = mean GFP inside the central square of the input."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2], x.shape[-1]
        centre = x[:, 2, h // 4: 3 * h // 4, w // 4: 3 * w // 4].mean(dim=(1, 2))
        return torch.stack([-centre, centre], dim=1)


class NaNOnRealData(torch.nn.Module):
    """Finite on the loader's dry run (flat input), NaN on any field with texture."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        centre = x[:, 2].mean(dim=(1, 2))
        logits = torch.stack([-centre, centre], dim=1)
        spread = x.amax() - x.amin()
        return torch.where(spread > 0.01, logits * float("nan"), logits)


META = {"channels": list(DEMO_CHANNELS), "input_size": [64, 64],
        "normalization": {"mean": [500.0] * 4, "std": [500.0] * 4},
        "classes": list(DEMO_CLASSES), "field_mode": "resize", "arch": "test-marker-mean"}


@pytest.fixture(scope="module")
def two_plates(tmp_path_factory):
    root = tmp_path_factory.mktemp("faults")
    p1 = make_plate(root / "p.zarr", plate_format=96, fields=2, size=64, seed=3)
    p2 = make_plate(root / "p2.zarr", plate_format=96, fields=2, size=64, seed=3)  # same content
    model = save_classifier(torch.jit.script(MarkerMean()), META, root / "marker.pt")
    return p1, p2, model


def _job(plate, model, **kw):
    base = {"plate": str(plate), "model": str(model), "method": "rise", "seed": 7,
            "options": {"n_masks": 16, "batch_size": 16}, "wells": ["B11"], "fields": [0]}
    base.update(kw)
    return BatchJob(**base)


def _strict(text: str):
    def refuse(name):
        raise ValueError(f"bare {name} in JSON")

    return json.loads(text, parse_constant=refuse)


def _csv_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_store_refuses_a_second_plate(two_plates, tmp_path):
    p1, p2, model = two_plates
    store = tmp_path / "R.zarr"
    run_plate(_job(p1, model), store)
    with pytest.raises(StoreMismatchError, match="plate"):
        run_plate(_job(p2, model, wells=["B11", "B12"]), store)
    assert [r["well"] for r in read_records(store)] == ["B11"]


def test_store_made_with_a_relative_plate_path_opens_from_elsewhere(two_plates, tmp_path, monkeypatch):
    p1, _, model = two_plates
    monkeypatch.chdir(p1.parent)
    run_plate(_job(p1.name, model), "R.zarr")
    store = p1.parent / "R.zarr"
    monkeypatch.chdir(tmp_path)
    meta = ResultStore.open(store).meta
    assert Path(meta["plate"]).is_absolute() and Path(meta["model"]).is_absolute()
    assert open_plate(meta["plate"]).wells  # the recorded plate opens from another folder
    again = run_plate(_job(meta["plate"], model), store)  # same plate by its absolute path
    assert again.skipped == [("B11", 0)] and again.done == []
    shutil.rmtree(store)


def test_temp_folders_are_ignored_and_removed_on_the_next_run(two_plates, tmp_path):
    p1, _, model = two_plates
    store = tmp_path / "R.zarr"
    run_plate(_job(p1, model, wells=["B11", "B12"]), store)
    field = store / "B" / "11" / "0"
    leftovers = [field.parent / ".0.deadbeef.tmp", field.parent / ".1.0badf00d.tmp",
                 store / "B" / ".12.cafe0123.tmp", tmp_path / ".R.csv.12345678.tmp"]
    for left in leftovers[:2]:
        shutil.copytree(field, left)  # a complete-looking field a kill -9 left behind
    leftovers[2].mkdir()
    leftovers[3].write_text("well,field\nB11,0\n")

    assert [(r["well"], r["field"]) for r in read_records(store)] == [("B11", 0), ("B12", 0)]
    assert len(ResultStore.open(store).records) == 2
    assert write_csv(store, tmp_path / "R.csv") == 2
    report = run_plate(_job(p1, model, wells=["B11", "B12"]), store)
    assert sorted(report.skipped) == [("B11", 0), ("B12", 0)]
    assert not any(p.exists() for p in leftovers)
    assert not [p for p in tmp_path.rglob("*") if atomic.is_temp_name(p.name)]
    assert [(r["well"], r["field"]) for r in _csv_rows(tmp_path / "R.csv")] == [("B11", "0"), ("B12", "0")]


@pytest.fixture()
def broken_plate(two_plates, tmp_path):
    """A copy of the plate with one unreadable chunk in B11 field 0; returns (plate, chunk, good bytes)."""
    plate = shutil.copytree(two_plates[0], tmp_path / "broken.zarr")
    chunk = next(p for p in sorted((plate / "B" / "11" / "0" / "0").iterdir()) if not p.name.startswith("."))
    good = chunk.read_bytes()
    chunk.write_bytes(b"not a blosc chunk" * 4)
    return plate, chunk, good


def test_without_skip_failed_the_first_failure_names_the_field(broken_plate, two_plates, tmp_path):
    plate, _, _ = broken_plate
    with pytest.raises(FieldError, match="B11 f0: .*cannot read") as exc:
        run_plate(_job(plate, two_plates[2], wells=["B11", "B12"]), tmp_path / "R.zarr")
    assert "\n" not in str(exc.value)


def test_skip_failed_records_an_unreadable_field_and_a_rerun_retries_it(broken_plate, two_plates, tmp_path):
    plate, chunk, good = broken_plate
    store = tmp_path / "R.zarr"
    job = _job(plate, two_plates[2], wells=["B11", "B12"])
    report = run_plate(job, store, skip_failed=True)
    assert report.done == [("B12", 0)]
    assert [(w, f) for w, f, _ in report.failed] == [("B11", 0)] and "cannot read" in report.failed[0][2]
    assert "B11 f0: " in report.summary() and "failed" in report.summary()
    opened = ResultStore.open(store)
    assert [r["well"] for r in opened.records] == ["B12"]
    assert [(r["well"], r["status"]) for r in opened.failed] == [("B11", "failed")]
    rows = _csv_rows(report.csv)
    assert [(r["well"], r["field"], r["status"]) for r in rows] == [("B11", "0", "failed"), ("B12", "0", "done")]
    assert "cannot read" in rows[0]["reason"]

    again = run_plate(job, store, skip_failed=True)  # still broken: retried, failed again
    assert [(w, f) for w, f, _ in again.failed] == [("B11", 0)] and again.skipped == [("B12", 0)]

    chunk.write_bytes(good)
    fixed = run_plate(job, store, skip_failed=True)
    assert fixed.done == [("B11", 0)] and fixed.failed == [] and ResultStore.open(store).failed == []
    assert [r["status"] for r in _csv_rows(fixed.csv)] == ["done", "done"]


def test_non_finite_model_output_fails_the_field_and_the_json_stays_strict(two_plates, tmp_path):
    p1, _, _ = two_plates
    model = save_classifier(torch.jit.script(NaNOnRealData()), META, tmp_path / "nan.pt")
    store = tmp_path / "R.zarr"
    report = run_plate(_job(p1, model, wells=["B11", "C05"]), store, skip_failed=True)
    assert report.done == [] and [(w, f) for w, f, _ in report.failed] == [("B11", 0), ("C05", 0)]
    assert all("NaN" in reason or "finite" in reason for _, _, reason in report.failed)
    assert ResultStore.open(store).records == []  # never recorded as "control"
    jsons = [p for p in store.rglob("*") if p.name == ".zattrs" or p.suffix == ".json"]
    assert len(jsons) >= 3
    for path in jsons:
        _strict(path.read_text())
    with pytest.raises(FieldError, match="B11 f0"):
        run_plate(_job(p1, model, wells=["B11"]), tmp_path / "R2.zarr")


def test_fields_a_well_lacks_are_refused_naming_the_well(two_plates, tmp_path):
    p1, _, model = two_plates
    with pytest.raises(ValueError, match="well B11 has 2 field"):
        run_plate(_job(p1, model, fields=[5]), tmp_path / "R.zarr")
    assert not (tmp_path / "R.zarr").exists()


def test_out_inside_the_input_plate_is_refused(two_plates):
    p1, _, model = two_plates
    with pytest.raises(ValueError, match="inside the input plate"):
        run_plate(_job(p1, model), p1 / "R.zarr")
    assert not (p1 / "R.zarr").exists()


def test_a_store_path_that_is_a_file_is_named(two_plates, tmp_path):
    p1, _, model = two_plates
    (tmp_path / "R.zarr").write_text("not a store")
    with pytest.raises(FileExistsError, match="is a file"):
        run_plate(_job(p1, model), tmp_path / "R.zarr")
