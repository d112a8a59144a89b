"""Whole plates, headless: explain every field into a resumable OME-Zarr result store.

Layout of ``RESULT.zarr`` (laid out like the plate, NGFF 0.4, zarr format 2)::

    RESULT.zarr/.zattrs          plate metadata + {"napari_pcim": {fingerprint, model, method, ...}}
    RESULT.zarr/B/3/0/0          attribution maps (T, Y, X) float32, one channel per target class
    RESULT.zarr/B/3/0/labels/gt  the plate's ground-truth labels for that field, when it has them
    RESULT.csv                   one row per done field: well, field, condition, prediction, metrics

Each field is written to a temporary sibling folder and renamed into place, so a field is
either complete or absent: a crash or Ctrl-C loses at most the fields in progress, and a
rerun skips the fields already there. The store records a fingerprint of the model file,
method, target, seed and options; a store made with anything different is refused.

Fields run in-process, or on a dask.distributed cluster (``workers=N`` for a local one,
``scheduler="tcp://..."`` for an existing one); each worker loads the model once and writes
its fields straight to the shared store. Per-field seeds derive from (seed, well, field),
so seeded methods give identical maps whatever runs them, in whatever order.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from napari_pcim import __version__

FORMAT_KEY = "napari_pcim"
HIT_CLASS = "treated"


class StoreMismatchError(ValueError):
    """An existing result store was made with another model, method or options."""


@dataclass
class BatchJob:
    """What to explain: everything that defines the result store's contents."""

    plate: str
    model: str
    method: str = "pcim"
    target: str = "predicted"
    seed: int = 0
    device: str = "cpu"
    options: dict[str, Any] = field(default_factory=dict)
    wells: list[str] | None = None
    fields: list[int] | None = None

    def fingerprint(self, model_sha256: str) -> str:
        """Hash of what determines the maps (not the device, wells or fields chosen)."""
        spec = {
            "model_sha256": model_sha256,
            "method": self.method,
            "target": self.target,
            "seed": self.seed,
            "options": self.options,
        }
        return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()


@dataclass
class BatchReport:
    """What a run did: fields done now, skipped (already done), still missing, and timings."""

    store: Path
    csv: Path
    done: list[tuple[str, int]]
    skipped: list[tuple[str, int]]
    missing: list[tuple[str, int]]
    seconds: float
    fields_per_minute: float
    interrupted: bool = False

    def summary(self) -> str:
        total = len(self.done) + len(self.skipped) + len(self.missing)
        lines = [
            f"{len(self.done) + len(self.skipped)}/{total} fields complete in {self.store} "
            f"({len(self.done)} now, {len(self.skipped)} from an earlier run); "
            f"{self.fields_per_minute:.1f} fields/min",
            f"table: {self.csv}",
        ]
        if self.missing:
            names = ", ".join(f"{w} f{f}" for w, f in self.missing[:20])
            more = f" and {len(self.missing) - 20} more" if len(self.missing) > 20 else ""
            lines.append(f"not done ({'interrupted' if self.interrupted else 'failed'}): {names}{more}; "
                         "rerun the same command to finish them")
        return "\n".join(lines)


def field_seed(seed: int, well: str, field_index: int) -> int:
    """A per-field seed that does not depend on run order or worker."""
    return (seed * 1_000_003 + zlib.crc32(f"{well}/{field_index}".encode())) % (2**31 - 1)


def _well_path(well: str) -> tuple[str, str]:
    row = "".join(ch for ch in well if ch.isalpha())
    col = well[len(row):].lstrip("0") or "0"
    return row, col


def _field_dir(store: Path, well: str, field_index: int) -> Path:
    row, col = _well_path(well)
    return store / row / col / str(field_index)


def _is_done(store: Path, well: str, field_index: int) -> bool:
    return (_field_dir(store, well, field_index) / ".zattrs").is_file()


# --------------------------------------------------------------------------- store


def _write_field_group(
    final: Path,
    maps: np.ndarray,
    map_names: list[str],
    labels: dict[str, np.ndarray],
    pixel_size: Sequence[float] | None,
    record: dict[str, Any],
) -> None:
    """Write one field (maps + labels + record) to a temp folder, then rename it to ``final``."""
    from napari_pcim.export import write_ome_zarr_image

    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".tmp-{final.name}-{uuid.uuid4().hex[:8]}"
    try:
        # The record is stored under "napari_pcim": a renamed folder is a complete field.
        write_ome_zarr_image(tmp, maps.astype(np.float32), map_names, labels,
                             tuple(pixel_size) if pixel_size else None, record)
        if final.exists():  # a field written twice (e.g. a retried dask task): keep the first
            shutil.rmtree(tmp, ignore_errors=True)
            return
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def open_store(store: Path, job: BatchJob, plate: Any, model_sha256: str) -> dict[str, Any]:
    """Create ``store`` or check that an existing one was made by the same job.

    Raises :class:`StoreMismatchError` naming what differs.
    """
    fingerprint = job.fingerprint(model_sha256)
    attrs_file = store / ".zattrs"
    if attrs_file.exists():
        attrs = json.loads(attrs_file.read_text()).get(FORMAT_KEY)
        if attrs is None:
            raise StoreMismatchError(f"{store}: exists and is not a napari-pcim result store; choose another --out")
        if attrs["fingerprint"] != fingerprint:
            ours = {"model_sha256": model_sha256, "method": job.method, "target": job.target,
                    "seed": job.seed, "options": job.options}
            diffs = [f"{k}: store has {attrs.get(k)!r}, this run {v!r}"
                     for k, v in ours.items() if attrs.get(k) != v]
            raise StoreMismatchError(
                f"{store}: made with a different model, method or options, refusing to mix results "
                f"({'; '.join(diffs) or 'fingerprint differs'}). Use another --out, or delete the store."
            )
        return attrs
    if store.exists() and any(store.iterdir()):
        raise StoreMismatchError(f"{store}: exists and is not a napari-pcim result store; choose another --out")
    store.mkdir(parents=True, exist_ok=True)
    meta = {
        "fingerprint": fingerprint,
        "model": str(job.model),
        "model_sha256": model_sha256,
        "method": job.method,
        "target": job.target,
        "seed": job.seed,
        "options": job.options,
        "plate": str(job.plate),
        "napari_pcim_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    rows = list(plate.rows)
    cols = [str(c) for c in plate.columns]
    wells = [{"path": "/".join(_well_path(w)), "rowIndex": rows.index(_well_path(w)[0]),
              "columnIndex": cols.index(_well_path(w)[1])} for w in plate.wells]
    ngff_plate = {"version": "0.4", "name": f"napari-pcim {job.method}",
                  "rows": [{"name": r} for r in rows], "columns": [{"name": c} for c in cols],
                  "wells": wells}
    tmp = store / f".zattrs.tmp-{uuid.uuid4().hex[:8]}"
    tmp.write_text(json.dumps({"plate": ngff_plate, FORMAT_KEY: meta}, indent=1))
    (store / ".zgroup").write_text(json.dumps({"zarr_format": 2}))
    os.replace(tmp, attrs_file)
    return meta


# --------------------------------------------------------------------------- one field

_WORKER_CACHE: dict[tuple[str, str], Any] = {}


def _cached(kind: str, key: str, make: Callable[[], Any]) -> Any:
    """A per-process cache: each dask worker (or the main process) loads a model/plate once."""
    if (kind, key) not in _WORKER_CACHE:
        _WORKER_CACHE[(kind, key)] = make()
    return _WORKER_CACHE[(kind, key)]


def process_field(job: BatchJob, store: str, well: str, field_index: int,
                  should_stop: Callable[[], bool] | None = None) -> dict[str, Any]:
    """Explain one field, score it against its ground truth, write it; return its CSV record."""
    from napari_pcim.classifier import load_classifier
    from napari_pcim.explainers import explain
    from napari_pcim.metrics import evaluate_map
    from napari_pcim.plate_io import open_plate

    plate = _cached("plate", str(job.plate), lambda: open_plate(job.plate))
    clf = _cached("model", f"{job.model}@{job.device}",
                  lambda: load_classifier(job.model, device=job.device, channels=plate.channel_names))
    image = plate.read_field(well, field_index)
    labels = plate.read_labels(well, field_index)
    t0 = time.perf_counter()
    attr = explain(clf, image, method=job.method, target=job.target, device=job.device,
                   seed=field_seed(job.seed, well, field_index), should_stop=should_stop,
                   plate_channels=plate.channel_names, **job.options)
    seconds = time.perf_counter() - t0
    maps = attr.maps[0]
    targets = [attr.classes[int(t)] for t in attr.targets[0]]
    probs = {f"p_{c}": float(p) for c, p in zip(attr.classes, attr.probabilities[0])}
    record: dict[str, Any] = {
        "name": f"{well} f{field_index}",
        "well": well,
        "field": field_index,
        "condition": plate.conditions.get(well, ""),
        "expected": getattr(plate, "phenotypes", {}).get(well, ""),
        "predicted": attr.classes[int(np.argmax(attr.probabilities[0]))],
        **probs,
        "targets": targets,
        "seconds": round(seconds, 4),
    }
    gt = labels.get("gt")
    if gt is not None and np.any(gt):
        # Ground truth marks the hit phenotype: score the map of the hit class when it was
        # explained ("treated" in the demo plates), else the first target's map.
        t = targets.index(HIT_CLASS) if HIT_CLASS in targets else 0
        scores = evaluate_map(maps[t], np.asarray(gt) > 0)
        record["scored_target"] = targets[t]
        record.update({k: (None if not np.isfinite(v) else float(v)) for k, v in scores.items()})
    names = [f"{job.method.upper() if job.method != 'pixelcam' else 'PixelCAM'} · {t}" for t in targets]
    _write_field_group(_field_dir(Path(store), well, field_index), maps, names, labels,
                       plate.pixel_size, record)
    return record


def _worker_process_field(job: BatchJob, store: str, well: str, field_index: int) -> dict[str, Any]:
    """Dask task: one torch thread per worker process, so N workers use N cores."""
    import torch

    torch.set_num_threads(1)
    return process_field(job, store, well, field_index)


# --------------------------------------------------------------------------- CSV


def write_csv(store: Path, csv_path: Path) -> int:
    """(Re)write the per-field table from the records of the complete fields; atomic."""
    records = []
    for attrs in sorted(store.glob("*/*/*/.zattrs")):
        rec = json.loads(attrs.read_text()).get(FORMAT_KEY)
        if rec:
            records.append(rec)
    records.sort(key=lambda r: (r["well"][0], int(r["well"][1:]), r["field"]))
    columns: list[str] = []
    for rec in records:
        columns += [k for k in rec if k not in columns and k not in ("name", "targets")]
    fd, tmp = tempfile.mkstemp(dir=csv_path.parent, prefix=f".{csv_path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
            writer.writeheader()
            for rec in records:
                writer.writerow({k: ("" if rec.get(k) is None else rec.get(k)) for k in columns})
        os.replace(tmp, csv_path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return len(records)


def read_records(store: str | os.PathLike) -> list[dict[str, Any]]:
    """The records of the complete fields of a result store (for the GUI's result browser)."""
    out = []
    for attrs in sorted(Path(store).glob("*/*/*/.zattrs")):
        rec = json.loads(attrs.read_text()).get(FORMAT_KEY)
        if rec:
            out.append(rec)
    return out


def read_store_meta(store: str | os.PathLike) -> dict[str, Any]:
    """The root ``napari_pcim`` attributes of a result store (model, method, plate, options).

    Raises ``ValueError`` naming the path when it is not a napari-pcim result store.
    """
    attrs_file = Path(store) / ".zattrs"
    try:
        meta = json.loads(attrs_file.read_text()).get(FORMAT_KEY)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{store}: not a napari-pcim result store (cannot read {attrs_file.name}: {exc})") from exc
    if not isinstance(meta, dict) or "method" not in meta:
        raise ValueError(f"{store}: not a napari-pcim result store (no '{FORMAT_KEY}' entry in .zattrs)")
    return meta


def read_field_maps(
    store: str | os.PathLike, well: str, field_index: int
) -> tuple[np.ndarray, list[str], dict[str, Any]]:
    """One done field of a result store: maps (T, Y, X) float32, their names, its record.

    Raises ``KeyError`` naming the well and field when the store lacks that field.
    """
    import zarr

    folder = _field_dir(Path(store), well, field_index)
    if not _is_done(Path(store), well, field_index):
        raise KeyError(f"{store}: no result for {well} field {field_index + 1}")
    group = zarr.open_group(str(folder), mode="r")
    maps = np.asarray(group["0"][:], dtype=np.float32)
    names = [c["label"] for c in group.attrs["omero"]["channels"]]
    return maps, names, dict(group.attrs[FORMAT_KEY])


# --------------------------------------------------------------------------- driver


def plan_fields(plate: Any, wells: Iterable[str] | None, fields: Iterable[int] | None) -> list[tuple[str, int]]:
    """The (well, field) pairs to process, checked against the plate."""
    chosen = list(wells) if wells else list(plate.wells)
    unknown = [w for w in chosen if w not in plate.wells]
    if unknown:
        raise ValueError(f"{plate.path}: no images for well(s) {', '.join(unknown)}; "
                         f"the plate has {', '.join(plate.wells[:12])}{' …' if len(plate.wells) > 12 else ''}")
    pairs = []
    for w in chosen:
        n = plate.n_fields(w)
        for f in (fields if fields is not None else range(n)):
            if f < n:
                pairs.append((w, int(f)))
    return pairs


def run_plate(
    job: BatchJob,
    store: str | os.PathLike,
    *,
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    workers: int = 0,
    scheduler: str | None = None,
) -> BatchReport:
    """Explain every planned field into ``store``; skip fields already done; return a report."""
    from napari_pcim.classifier import load_classifier
    from napari_pcim.explainers import Cancelled
    from napari_pcim.plate_io import open_plate

    store = Path(store)
    plate = open_plate(job.plate)
    clf = load_classifier(job.model, channels=plate.channel_names)
    job.model = str(clf.path)
    open_store(store, job, plate, clf.sha256)
    csv_path = store.with_suffix(".csv")
    pairs = plan_fields(plate, job.wells, job.fields)
    skipped = [p for p in pairs if _is_done(store, *p)]
    todo = [p for p in pairs if p not in skipped]
    done: list[tuple[str, int]] = []
    t0 = time.perf_counter()
    interrupted = False

    def tick() -> None:
        if progress is not None:
            progress(len(skipped) + len(done), len(pairs))

    tick()
    try:
        if workers or scheduler:
            done = _run_dask(job, store, todo, workers, scheduler, tick, done)
        else:
            for well, f in todo:
                if should_stop is not None and should_stop():
                    raise Cancelled("stopped by the user")
                process_field(job, str(store), well, f, should_stop=should_stop)
                done.append((well, f))
                tick()
    except (KeyboardInterrupt, Cancelled):
        interrupted = True
    finally:
        write_csv(store, csv_path)
    seconds = time.perf_counter() - t0
    missing = [p for p in pairs if not _is_done(store, *p)]
    return BatchReport(store=store, csv=csv_path, done=done, skipped=skipped, missing=missing,
                       seconds=seconds, fields_per_minute=60 * len(done) / seconds if seconds > 0 else 0.0,
                       interrupted=interrupted)


def _run_dask(job: BatchJob, store: Path, todo: list[tuple[str, int]], workers: int,
              scheduler: str | None, tick: Callable[[], None], done: list[tuple[str, int]]):
    try:
        from distributed import Client, LocalCluster, as_completed
    except ImportError as exc:
        raise ValueError("--workers/--dask-scheduler need dask.distributed: "
                         "pip install 'napari-pcim[scale]'") from exc
    cluster = None
    if scheduler:
        client = Client(scheduler)
    else:
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address=None, silence_logs=40)
        client = Client(cluster)
    try:
        futures = {client.submit(_worker_process_field, job, str(store), w, f, pure=False): (w, f)
                   for w, f in todo}
        for fut in as_completed(futures):
            fut.result()  # re-raises a worker's error with its message
            done.append(futures[fut])
            tick()
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    return done


def run_plate_cli(args: Any) -> int:
    """``napari-pcim explain PLATE --all-wells --out RESULT.zarr`` (and --wells with a .zarr out)."""
    from tqdm import tqdm

    from napari_pcim.classifier import resolve_model_path

    job = BatchJob(
        plate=args.plate, model=str(resolve_model_path(args.model)), method=args.method,
        target=args.target, seed=args.seed, device=args.device, options=dict(args.options),
        wells=None if args.all_wells else [w.strip() for w in args.wells.split(",") if w.strip()],
        fields=None if args.fields is None else [int(f) for f in args.fields.split(",")],
    )
    bar = tqdm(total=0, desc=f"{job.method} fields", unit="field", file=sys.stderr)

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    report = run_plate(job, args.out, progress=progress, workers=args.workers, scheduler=args.dask_scheduler)
    bar.close()
    print(report.summary())
    return 130 if report.interrupted else (1 if report.missing else 0)
