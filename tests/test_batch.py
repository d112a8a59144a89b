"""Whole-plate runs: result store layout, resume, refusal to mix, dask parity."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from napari_pcim import atomic
from napari_pcim.batch import BatchJob, ResultStore, StoreMismatchError, run_plate
from napari_pcim.classifier import load_classifier, save_classifier
from napari_pcim.plate_io import open_plate
from napari_pcim.synth import make_plate
from napari_pcim.vocabulary import DEMO_CHANNELS, DEMO_CLASSES


class MarkerMean(torch.nn.Module):
    """Logit of 'treated' = mean GFP inside the central square of the input."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2], x.shape[-1]
        centre = x[:, 2, h // 4: 3 * h // 4, w // 4: 3 * w // 4].mean(dim=(1, 2))
        return torch.stack([-centre, centre], dim=1)


class MarkerMeanFlipped(torch.nn.Module):
    """MarkerMean with the two logits swapped: a different model with the same contract."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2], x.shape[-1]
        centre = x[:, 2, h // 4: 3 * h // 4, w // 4: 3 * w // 4].mean(dim=(1, 2))
        return torch.stack([centre, -centre], dim=1)


META = {"channels": list(DEMO_CHANNELS), "input_size": [64, 64],
        "normalization": {"mean": [500.0] * 4, "std": [500.0] * 4},
        "classes": list(DEMO_CLASSES), "field_mode": "resize", "arch": "test-marker-mean"}


@pytest.fixture(scope="module")
def plate_and_model(tmp_path_factory):
    root = tmp_path_factory.mktemp("batch")
    plate = make_plate(root / "plate.zarr", plate_format=96, fields=2, size=64, phenotype="foci", seed=3)
    model = save_classifier(torch.jit.script(MarkerMean()), META, root / "marker.pt")
    return plate, model


def _job(plate, model, **kw):
    base = dict(plate=str(plate), model=str(model), method="rise", seed=7, target="all",
                options={"n_masks": 32, "batch_size": 16}, wells=["B03", "C05", "D11"])
    base.update(kw)
    return BatchJob(**base)


def _maps(store):
    return {p.parent.relative_to(store).as_posix(): _read(p.parent)
            for p in sorted(store.glob("*/*/*/.zattrs"))}


def _read(field_dir):
    import zarr

    return np.asarray(zarr.open_group(str(field_dir), mode="r")["0"][:])


def test_store_layout_csv_and_resume(plate_and_model, tmp_path):
    plate, model = plate_and_model
    store = tmp_path / "result.zarr"
    calls = {"n": 0}

    def stop_after_two_fields():
        calls["n"] += 1
        return len(list(store.glob("*/*/*/.zattrs"))) >= 2

    first = run_plate(_job(plate, model), store, should_stop=stop_after_two_fields)
    assert first.interrupted and len(first.done) == 2 and len(first.missing) == 4
    assert not [p for p in store.rglob("*") if atomic.is_temp_name(p.name)], \
        "an interrupted run leaves no half-written field"

    second = run_plate(_job(plate, model), store)
    assert not second.interrupted
    assert sorted(second.skipped) == sorted(first.done)
    assert len(second.done) == 4 and second.missing == []

    attrs = json.loads((store / ".zattrs").read_text())
    assert {w["path"] for w in attrs["plate"]["wells"]} >= {"B/3", "C/5", "D/11"}
    field_attrs = json.loads((store / "B" / "3" / "0" / ".zattrs").read_text())
    assert field_attrs["omero"]["channels"][0]["label"].startswith("RISE · ")
    assert (store / "B" / "3" / "0" / "labels" / "gt").is_dir()

    with open(second.csv, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["well"], r["field"]) for r in rows] == [
        ("B03", "0"), ("B03", "1"), ("C05", "0"), ("C05", "1"), ("D11", "0"), ("D11", "1")]
    assert {"condition", "predicted", "p_control", "p_treated"} <= set(rows[0])
    treated_rows = [r for r in rows if r.get("roc_auc")]
    assert treated_rows, "fields with ground truth get metric columns"
    assert all(r["scored_target"] == "treated" for r in treated_rows)
    assert {r["well"] for r in treated_rows} == {"C05", "D11"}  # B03 is a control well


def test_store_refuses_other_method_or_options(plate_and_model, tmp_path):
    plate, model = plate_and_model
    store = tmp_path / "result.zarr"
    run_plate(_job(plate, model, wells=["B03"], fields=[0]), store)
    with pytest.raises(StoreMismatchError, match="method"):
        run_plate(_job(plate, model, wells=["B03"], fields=[0], method="pcim", options={}), store)
    with pytest.raises(StoreMismatchError, match="options"):
        run_plate(_job(plate, model, wells=["B03"], fields=[0], options={"n_masks": 64}), store)


def test_unknown_well_is_named(plate_and_model, tmp_path):
    plate, model = plate_and_model
    with pytest.raises(ValueError, match="Z99"):
        run_plate(_job(plate, model, wells=["Z99"]), tmp_path / "r.zarr")


@pytest.mark.slow
def test_dask_local_cluster_matches_in_process(plate_and_model, tmp_path):
    pytest.importorskip("distributed")
    plate, model = plate_and_model
    local = run_plate(_job(plate, model), tmp_path / "local.zarr")
    dist = run_plate(_job(plate, model), tmp_path / "dask.zarr", workers=2)
    assert len(dist.done) == len(local.done) == 6
    a, b = _maps(tmp_path / "local.zarr"), _maps(tmp_path / "dask.zarr")
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])


def test_read_store_meta_and_field_maps(plate_and_model, tmp_path):
    import zarr

    from napari_pcim.batch import read_field_maps, read_records, read_store_meta

    plate, model = plate_and_model
    store = tmp_path / "result.zarr"
    run_plate(_job(plate, model, wells=["C05"], fields=[1]), store)
    meta = read_store_meta(store)
    assert meta["method"] == "rise" and meta["plate"] == str(plate)
    maps, names, record = read_field_maps(store, "C05", 1)
    np.testing.assert_array_equal(maps, zarr.open_group(str(store / "C" / "5" / "1"), mode="r")["0"][:])
    assert names == ["RISE · control", "RISE · treated"] and maps.shape[0] == 2
    assert record == read_records(store)[0] and record["well"] == "C05" and record["field"] == 1
    with pytest.raises(KeyError, match="C05 f0"):
        read_field_maps(store, "C05", 0)
    with pytest.raises(ValueError, match="not a napari-pcim result store"):
        read_store_meta(tmp_path)


def test_result_store_reader(plate_and_model, tmp_path):
    plate, model = plate_and_model
    store = tmp_path / "result.zarr"
    run_plate(_job(plate, model, wells=["B03", "C05"], fields=[0, 1]), store)
    opened = ResultStore.open(store)
    assert opened.path == store and opened.meta["method"] == "rise"
    assert opened.classes == list(DEMO_CLASSES)
    assert [(r["well"], r["field"]) for r in opened.records] == [("B03", 0), ("B03", 1), ("C05", 0), ("C05", 1)]
    assert opened.record("C05", 1)["name"] == "C05 f1" and opened.record("C05", 2) is None
    probs, mass = opened.per_well()
    np.testing.assert_allclose(probs["B03"], np.mean(
        [[r["p_control"], r["p_treated"]] for r in opened.records if r["well"] == "B03"], axis=0))
    assert set(mass) == {"C05"}  # only fields with ground truth are scored
    with pytest.raises(ValueError, match="not a napari-pcim result store"):
        ResultStore.open(tmp_path)


def test_retrained_model_at_the_same_path_is_used(plate_and_model, tmp_path):
    """A model overwritten at the same path is computed with its new weights, not a cached copy."""
    plate, _ = plate_and_model
    path = save_classifier(torch.jit.script(MarkerMean()), META, tmp_path / "model.pt")
    job = dict(wells=["C05"], fields=[0])
    run_plate(_job(plate, path, **job), tmp_path / "first.zarr")
    save_classifier(torch.jit.script(MarkerMeanFlipped()), META, path)
    run_plate(_job(plate, path, **job), tmp_path / "second.zarr")

    from napari_pcim.batch import read_field_maps

    maps1, _, rec1 = read_field_maps(tmp_path / "first.zarr", "C05", 0)
    maps2, _, rec2 = read_field_maps(tmp_path / "second.zarr", "C05", 0)
    assert abs(rec1["p_treated"] - 0.5) > 0.05  # the two models disagree on this field
    assert rec2["p_control"] == pytest.approx(rec1["p_treated"]) and rec2["predicted"] != rec1["predicted"]
    np.testing.assert_allclose(maps2[::-1], maps1, rtol=1e-5, atol=1e-6)  # the classes swapped
    sha = [json.loads((tmp_path / f / ".zattrs").read_text())["napari_pcim"]["model_sha256"]
           for f in ("first.zarr", "second.zarr")]
    assert sha[0] != sha[1]


def test_run_plate_uses_the_plate_and_classifier_it_is_given(plate_and_model, tmp_path):
    """The GUI hands in its open plate and loaded classifier; they win over the job's paths."""
    plate, model = plate_and_model
    flipped = save_classifier(torch.jit.script(MarkerMeanFlipped()), META, tmp_path / "flipped.pt")
    held = load_classifier(flipped)
    store = tmp_path / "result.zarr"
    report = run_plate(_job(plate, model, wells=["C05"], fields=[0]), store,
                       plate=open_plate(plate), classifier=held)
    assert report.done == [("C05", 0)]
    meta = json.loads((store / ".zattrs").read_text())["napari_pcim"]
    assert meta["model"] == str(flipped) and meta["model_sha256"] == held.sha256
    (record,) = ResultStore.open(store).records
    opened = open_plate(plate)
    expected = held.predict_proba(opened.read_field("C05", 0), plate_channels=opened.channel_names)[0]
    assert [record["p_control"], record["p_treated"]] == pytest.approx(expected.tolist(), abs=1e-6)
    assert abs(expected[1] - 0.5) > 0.05  # and the job's own model would have said otherwise


def test_per_channel_plate_run_writes_importance_columns_and_channel_maps(plate_and_model, tmp_path):
    from napari_pcim.batch import read_channel_maps, read_field_maps

    plate, model = plate_and_model
    store = tmp_path / "result.zarr"
    job = _job(plate, model, wells=["B03", "C05"], per_channel=True)
    report = run_plate(job, store)
    with open(report.csv, newline="") as fh:
        rows = list(csv.DictReader(fh))
    columns = [f"importance_{c}" for c in DEMO_CHANNELS]
    assert columns == [k for k in rows[0] if k.startswith("importance_")]
    for row in rows:
        shares = np.array([float(row[c]) for c in columns])
        assert row["channel_target"] == "treated"
        assert shares.sum() == pytest.approx(1.0, abs=1e-4) or shares.sum() == 0, row
        if shares.sum():  # the model reads GFP only
            assert shares[DEMO_CHANNELS.index("GFP")] >= 0.9, row
    assert any(float(r["importance_GFP"]) > 0 for r in rows)
    maps, _, _ = read_field_maps(store, "C05", 0)
    channel_maps, names = read_channel_maps(store, "C05", 0)
    assert names == list(DEMO_CHANNELS) and channel_maps.shape == (2, 4, *maps.shape[1:])
    np.testing.assert_allclose(channel_maps[1].sum(axis=0), maps[1], rtol=1e-4, atol=1e-6)
    # per-channel is part of what the store holds: a run without it is refused there
    with pytest.raises(StoreMismatchError, match="per_channel: store has True, this run False"):
        run_plate(_job(plate, model, wells=["B03", "C05"]), store)
    run_plate(_job(plate, model, wells=["B03"], fields=[0]), tmp_path / "plain.zarr")
    with pytest.raises(KeyError, match="per-channel"):
        read_channel_maps(tmp_path / "plain.zarr", "B03", 0)
