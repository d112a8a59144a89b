"""Whole-plate throughput (``napari-pcim bench plate``): a projection checked against a run.

The cost model (the same as ``bench speed``'s): a field of side S costs
``a + b · tiles(S)`` seconds with one torch thread, where ``b`` is the method's seconds
per classifier tile and ``a`` the per-field rest (normalising, the probability pass,
blending, reading and writing). :func:`calibrate` measures ``b`` (and ``explain()``'s
share of ``a``) by explaining a one-tile field (the classifier's input size) and a field
of the run's size; :func:`measure` then takes ``a`` from one well's fields run through
the whole batch pipeline (a well the checked run does not use), less its tiles' cost;
:func:`project` gives a plate's wall time on N workers (one core, one thread each):

    T(N) = cluster_start + model_load + fields × (a + b · tiles(S)) ÷ N   (N > 1)
    T(1) = model_load + fields × (a + b · tiles(S))

:func:`measure` generates a demo plate, explains ``wells`` fields in-process with one
torch thread (checking the projection against it: ``projection_error``, target within
20 %) and on a local ``dask.distributed`` cluster, and returns the figures.
"""

from __future__ import annotations

import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any


def measure(*, wells: int = 8, fields: int = 1, size: int = 256, method: str = "pcim",
            workers: int = 2, options: dict[str, Any] | None = None, device: str = "cpu") -> dict[str, Any]:
    """Run the same fields in-process and on ``workers`` local dask workers; return figures."""
    import torch

    from napari_pcim.batch import BatchJob, run_plate
    from napari_pcim.classifier import bundled_model_path, load_classifier
    from napari_pcim.synth import make_plate

    options = dict(options or {})
    if not 1 <= wells < PLATE_WELLS:
        raise ValueError(f"bench plate --wells {wells}: expected 1 to {PLATE_WELLS - 1} (one more well of "
                         f"the {PLATE_WELLS}-well plate calibrates the cost model)")
    with tempfile.TemporaryDirectory(prefix="pcim-bench-plate-") as tmp:
        tmp_path = Path(tmp)
        t0 = time.perf_counter()
        plate = make_plate(tmp_path / "plate.zarr", plate_format=PLATE_WELLS, fields=fields, size=size,
                           phenotype="foci", seed=11)
        make_s = time.perf_counter() - t0
        model = bundled_model_path("foci_vgg")
        t0 = time.perf_counter()
        load_classifier(model)
        load_s = time.perf_counter() - t0

        from napari_pcim.plate_io import open_plate

        all_wells = open_plate(plate).wells
        chosen, spare = all_wells[:wells], all_wells[wells]

        def job(these: list[str] | None = None) -> BatchJob:
            return BatchJob(plate=str(plate), model=str(model), method=method, seed=0, device=device,
                            options=options, wells=list(these or chosen))

        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # the cost model's unit: one worker, one core, one thread
        clf_meta = load_classifier(model).meta
        try:
            a, b = calibrate(load_classifier(model), size, method, options, device)
            # the pipeline's own per-field rest (reading, statistics, writing the store), from
            # one field of a well the checked run does not use
            one = run_plate(job([spare]), tmp_path / "calibrate.zarr")
            a = max(a, one.seconds / fields - b * tiles(clf_meta, size))
            local = run_plate(job(), tmp_path / "local.zarr")
        finally:
            torch.set_num_threads(threads)
        t0 = time.perf_counter()
        from distributed import Client, LocalCluster

        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address=None, silence_logs=40)
        client = Client(cluster)
        start_s = time.perf_counter() - t0
        client.close()
        cluster.close()
        dist = run_plate(job(), tmp_path / "dask.zarr", workers=workers)

    n = len(local.done)
    per_field = local.seconds / n
    predicted = project(a, b, tiles(clf_meta, size), n, 1, 0.0, load_s)
    per_field_dist = dist.seconds / max(len(dist.done), 1)
    return {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch threads {threads}",
        "device": device,
        "method": method,
        "options": options,
        "fields": n,
        "field_size": size,
        "plate_generation_seconds": round(make_s, 2),
        "in_process_fields_per_minute": round(local.fields_per_minute, 2),
        "dask_workers": workers,
        "dask_fields_per_minute": round(dist.fields_per_minute, 2),
        "dask_speedup": round(dist.fields_per_minute / local.fields_per_minute, 3),
        "seconds_per_field_in_process": round(per_field, 3),
        "seconds_per_field_dask_wall": round(per_field_dist, 3),
        "cluster_start_seconds": round(start_s, 2),
        "model_load_seconds": round(load_s, 3),
        "seconds_per_field_fixed_a": round(a, 4),
        "seconds_per_tile_b": round(b, 4),
        "tiles_per_field": tiles(clf_meta, size),
        "measured_in_process_seconds": round(local.seconds, 2),
        "projected_in_process_seconds": round(predicted, 2),
        "projection_error": round(predicted / local.seconds - 1, 3),
        "projection_within_20pct": abs(predicted / local.seconds - 1) <= 0.2,
        "cost_model": "T(N) = [N>1] cluster_start + model_load + fields * (a + b * tiles(S)) / N",
        "plate_384x4": {str(side): {str(w): round(project(a, b, tiles(clf_meta, side), 1536, w, start_s, load_s), 1)
                                    for w in WORKERS} for side in PLATE_SIDES},
    }


#: Wells of the generated plate the run and the calibration well come from.
PLATE_WELLS = 96
#: The projected plate: 384 wells × 4 fields at these sides, on these worker counts.
PLATE_SIDES = (1080, 2160)
WORKERS = (1, 2, 4, 8)


def tiles(meta: Any, side: int) -> int:
    """Classifier tiles of a side×side field (1 for a resized field)."""
    from napari_pcim.tiling import TilePlan

    return TilePlan.for_classifier(meta, (side, side)).n_tiles


def calibrate(clf: Any, size: int, method: str, options: dict[str, Any], device: str,
              repeats: int = 2) -> tuple[float, float]:
    """(a, b): seconds per field beyond the tiles, and per tile, with the current threads.

    Times ``explain()`` (best of ``repeats``, after a warm-up) on a one-tile field and on a
    ``size``² field; ``b`` is the difference per extra tile. With one tile at ``size`` the
    field time is all ``b`` (``a`` = 0).
    """
    from napari_pcim.bench.quality import HELD_OUT_SEED
    from napari_pcim.explainers import explain
    from napari_pcim.synth import generate_field

    side = int(clf.meta.input_size[0])

    def best(s: int) -> float:
        raw = generate_field("foci", True, size=s, seed=HELD_OUT_SEED).image
        explain(clf, raw, method=method, device=device, **options)  # warm-up
        out = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            explain(clf, raw, method=method, device=device, **options)
            out = min(out, time.perf_counter() - t0)
        return out

    n = tiles(clf.meta, size)
    t1 = best(side)
    if n <= 1:
        return 0.0, t1
    tn = best(size)
    b = max((tn - t1) / (n - 1), 0.0)
    return max(t1 - b, 0.0), b


def project(a: float, b: float, n_tiles: int, fields: int, workers: int, start: float, load: float) -> float:
    """Projected wall seconds for ``fields`` fields of ``n_tiles`` tiles on ``workers`` workers."""
    return (start if workers > 1 else 0.0) + load + fields * (a + b * n_tiles) / workers


def cost(figures: dict[str, Any], fields: int, n_workers: int, seconds_per_field: float | None = None) -> float:
    """Predicted wall seconds for ``fields`` like the measured ones on ``n_workers`` workers."""
    spf = seconds_per_field if seconds_per_field is not None else figures["seconds_per_field_in_process"]
    return figures["cluster_start_seconds"] + figures["model_load_seconds"] + fields * spf / n_workers
