"""Run a whole-plate job: in-process, or on a dask.distributed cluster.

:func:`run_plate` opens (or takes) the plate and the classifier, creates or checks the
result store, skips the fields already done and explains the others. In-process, every
field uses the plate and classifier the caller holds (the GUI hands in its own). On dask
(``workers=N`` for a local cluster, ``scheduler="tcp://..."`` for an existing one) each
worker process opens the plate and loads the model once per *content*: the model is
keyed by its sha256 and checked against the one the store was made with, so a model
retrained at the same path is never computed with a stale copy. Per-field seeds derive
from (seed, well, field), so seeded methods give identical maps whatever runs them.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from napari_pcim.batch.job import BatchJob, BatchReport, field_seed, plan_fields
from napari_pcim.batch.store import (
    clear_failed,
    field_dir,
    is_done,
    open_store,
    write_csv,
    write_failed,
    write_field_group,
)
from napari_pcim.vocabulary import HIT_CLASS, field_label

Progress = Callable[[int, int], None]


class FieldError(ValueError):
    """One field could not be explained (unreadable, the classifier failed, non-finite output).

    ``str()`` names the field and the reason; ``well``, ``field`` and ``reason`` hold them.
    """

    def __init__(self, well: str, field: int, reason: str) -> None:
        super().__init__(well, field, reason)
        self.well, self.field, self.reason = well, field, reason

    def __str__(self) -> str:
        return f"{field_label(self.well, self.field)}: {self.reason}"


def _explain_field(job: BatchJob, well: str, field_index: int, plate: Any, classifier: Any,
                   should_stop: Callable[[], bool] | None) -> tuple[Any, dict[str, Any], float]:
    """Read and explain one field; its failures become :class:`FieldError`."""
    from napari_pcim.explainers import explain

    try:
        image = plate.read_field(well, field_index)
        labels = plate.read_labels(well, field_index)
        t0 = time.perf_counter()
        attr = explain(classifier, image, method=job.method, target=job.target, device=job.device,
                       seed=field_seed(job.seed, well, field_index), should_stop=should_stop,
                       plate_channels=plate.channel_names,
                       field_names=[field_label(well, field_index)], per_channel=job.per_channel,
                       **job.options)
        seconds = time.perf_counter() - t0  # explain() refused any non-finite logits or maps
    except (ValueError, OSError, KeyError) as exc:
        raise FieldError(well, field_index, str(exc).strip("'\"") or type(exc).__name__) from exc
    return attr, labels, seconds


def process_field(job: BatchJob, store: str | os.PathLike, well: str, field_index: int, *,
                  plate: Any, classifier: Any,
                  should_stop: Callable[[], bool] | None = None) -> dict[str, Any]:
    """Explain one field, score it against its ground truth, add its ground-truth-free
    statistics (:func:`napari_pcim.plate_stats.field_statistics`, of the scored map), write
    it; return its CSV record.

    Raises :class:`FieldError` when the field cannot be read or explained.
    """
    from napari_pcim.explainers import method_label
    from napari_pcim.metrics import evaluate_map
    from napari_pcim.plate_stats import field_statistics

    attr, labels, seconds = _explain_field(job, well, field_index, plate, classifier, should_stop)
    maps = attr.maps[0]
    targets = [attr.classes[int(t)] for t in attr.targets[0]]
    probs = {f"p_{c}": float(p) for c, p in zip(attr.classes, attr.probabilities[0])}
    record: dict[str, Any] = {
        "name": field_label(well, field_index),
        "well": well,
        "field": field_index,
        "condition": plate.conditions.get(well, ""),
        "expected": getattr(plate, "phenotypes", {}).get(well, ""),
        "predicted": attr.classes[int(np.argmax(attr.probabilities[0]))],
        **probs,
        "targets": targets,
        "seconds": round(seconds, 4),
    }
    # Ground truth marks the hit phenotype: score the hit class's map when it was
    # explained, else the first target's map; its channel importance goes in the record.
    t = targets.index(HIT_CLASS) if HIT_CLASS in targets else 0
    channel_maps = None
    if attr.channel_importance is not None:
        record["channel_target"] = targets[t]
        record.update({f"importance_{c}": float(v) for c, v in
                       zip(attr.channel_names, attr.channel_importance[0, t])})
        channel_maps = (attr.channel_maps[0], list(attr.channel_names))
    record.update(field_statistics(
        maps[t], labels, attr.probabilities[0], attr.classes,
        None if attr.channel_importance is None else attr.channel_importance[0, t],
        None if attr.channel_importance is None else attr.channel_names))
    gt = labels.get("gt")
    if gt is not None and np.any(gt):
        scores = evaluate_map(maps[t], np.asarray(gt) > 0)
        record["scored_target"] = targets[t]
        record.update({k: (None if not np.isfinite(v) else float(v)) for k, v in scores.items()})
    label = method_label(job.method)
    names = [f"{label} · {t}" for t in targets]
    write_field_group(field_dir(Path(store), well, field_index), maps, names, labels,
                      plate.pixel_size, record, channel_maps)
    clear_failed(Path(store), well, field_index)
    return record


# --------------------------------------------------------------------------- dask workers

#: Per worker process: kind → (content key, object). Only the newest of each kind is kept.
_WORKER_HELD: dict[str, tuple[tuple[Any, ...], Any]] = {}


def _held(kind: str, key: tuple[Any, ...], make: Callable[[], Any]) -> Any:
    """The worker's object of ``kind`` for ``key``, made (and the old one dropped) when new."""
    held = _WORKER_HELD.get(kind)
    if held is None or held[0] != key:
        _WORKER_HELD[kind] = (key, make())
    return _WORKER_HELD[kind][1]


def plate_stamp(path: str | os.PathLike) -> tuple[Any, ...]:
    """Path, inode, size and modification time of a plate: changes when it is rewritten."""
    try:
        st = os.stat(path)
    except OSError:
        return (str(path),)
    return (str(path), st.st_ino, st.st_size, st.st_mtime_ns)


def _load_checked(job: BatchJob, model_sha256: str, channels: Any) -> Any:
    from napari_pcim.classifier import load_classifier

    clf = load_classifier(job.model, device=job.device, channels=channels)
    if clf.sha256 != model_sha256:
        raise ValueError(f"{job.model} changed during the run (sha256 {clf.sha256[:12]}…, the store "
                         f"was made with {model_sha256[:12]}…); rerun to continue with one model")
    return clf


def _worker_process_field(job: BatchJob, store: str, well: str, field_index: int,
                          model_sha256: str, stamp: tuple[Any, ...]) -> dict[str, Any] | str:
    """Dask task: one torch thread per worker process, so N workers use N cores.

    Returns the field's record, or a user error's one-line message (never raised, so no
    remote traceback reaches the console); bugs are raised.
    """
    import torch

    from napari_pcim.plate_io import open_plate

    torch.set_num_threads(1)
    plate = _held("plate", stamp, lambda: open_plate(job.plate, **job.reading))
    try:
        clf = _held("model", (job.model, model_sha256, job.device),
                    lambda: _load_checked(job, model_sha256, plate.channel_names))
        return process_field(job, store, well, field_index, plate=plate, classifier=clf)
    except FieldError as exc:
        return f"field\t{exc.reason}"
    except (ValueError, OSError) as exc:
        return f"run\t{exc}"


def _run_dask(job: BatchJob, store: Path, todo: list[tuple[str, int]], model_sha256: str,
              workers: int, scheduler: str | None, tick: Callable[[], None],
              done: list[tuple[str, int]], on_failed: Callable[[FieldError], None]) -> None:
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
    stamp = plate_stamp(job.plate)
    try:
        futures = {client.submit(_worker_process_field, job, str(store), w, f, model_sha256, stamp,
                                 pure=False): (w, f) for w, f in todo}
        for fut in as_completed(futures):
            result = fut.result()  # re-raises a worker's bug with its traceback
            if isinstance(result, str):  # a user error, as one line
                kind, _, message = result.partition("\t")
                if kind == "run":
                    raise ValueError(message)
                on_failed(FieldError(*futures[fut], message))
            else:
                done.append(futures[fut])
            tick()
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


# --------------------------------------------------------------------------- driver


def run_plate(
    job: BatchJob,
    store: str | os.PathLike,
    *,
    plate: Any = None,
    classifier: Any = None,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
    workers: int = 0,
    scheduler: str | None = None,
    skip_failed: bool = False,
) -> BatchReport:
    """Explain every planned field into ``store``; skip fields already done; return a report.

    A field that cannot be read or explained raises :class:`FieldError` (naming it and
    the reason); with ``skip_failed`` it is recorded as failed in the store instead, the
    run carries on and the report lists it. A rerun retries failed fields.

    ``plate`` (an open :class:`~napari_pcim.plate_io.Plate`) and ``classifier`` (a loaded
    :class:`~napari_pcim.classifier.Classifier`), when given, are used instead of opening
    ``job.plate`` and loading ``job.model``; the store is fingerprinted with that
    classifier's sha256. ``progress(done, total)`` counts fields (those already in the
    store included); ``should_stop()`` ends the run early (the report says interrupted).
    """
    from napari_pcim.classifier import load_classifier
    from napari_pcim.explainers import Cancelled
    from napari_pcim.plate_io import open_plate

    store = Path(store).absolute()
    if plate is None:
        plate = open_plate(job.plate, **job.reading)
    plate_path = Path(plate.path).resolve()
    if store.resolve() == plate_path or plate_path in store.resolve().parents:
        raise ValueError(f"--out {store}: is inside the input plate {plate_path}; choose a path outside it")
    job.plate = str(plate_path)
    if classifier is None:
        classifier = load_classifier(job.model, device=job.device, channels=plate.channel_names)
    job.model = str(Path(classifier.path).resolve())
    pairs = plan_fields(plate, job.wells, job.fields)
    open_store(store, job, plate, classifier.sha256)
    csv_path = store.with_suffix(".csv")
    skipped = [p for p in pairs if is_done(store, *p)]
    todo = [p for p in pairs if p not in skipped]
    done: list[tuple[str, int]] = []
    failed: list[tuple[str, int, str]] = []
    t0 = time.perf_counter()
    interrupted = False

    def on_failed(exc: FieldError) -> None:
        if not skip_failed:
            raise exc
        write_failed(store, exc.well, exc.field, exc.reason)
        failed.append((exc.well, exc.field, exc.reason))

    def tick() -> None:
        if progress is not None:
            progress(len(skipped) + len(done), len(pairs))

    tick()
    try:
        if workers or scheduler:
            _run_dask(job, store, todo, classifier.sha256, workers, scheduler, tick, done, on_failed)
        else:
            for well, f in todo:
                if should_stop is not None and should_stop():
                    raise Cancelled("stopped by the user")
                try:
                    process_field(job, store, well, f, plate=plate, classifier=classifier,
                                  should_stop=should_stop)
                    done.append((well, f))
                except FieldError as exc:
                    on_failed(exc)
                tick()
    except (KeyboardInterrupt, Cancelled):
        interrupted = True
    finally:
        write_csv(store, csv_path)
    seconds = time.perf_counter() - t0
    missing = [p for p in pairs if not is_done(store, *p)]
    return BatchReport(store=store, csv=csv_path, done=done, skipped=skipped, missing=missing,
                       seconds=seconds, fields_per_minute=60 * len(done) / seconds if seconds > 0 else 0.0,
                       interrupted=interrupted, failed=failed)
