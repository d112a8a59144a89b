"""Whole-plate throughput (``napari-pcim bench plate``) in-process and on a local dask cluster.

Generates a demo plate, explains the same fields once in-process and once with a local
``dask.distributed`` cluster, and returns fields per minute for each, the measured
overheads (cluster start, per-worker model load) and the inputs of a cost model for
N workers (the CLI handler in :mod:`napari_pcim.cli.bench` prints them):

    T(N) = cluster_start + model_load + fields × seconds_per_field ÷ N
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
    with tempfile.TemporaryDirectory(prefix="pcim-bench-plate-") as tmp:
        tmp_path = Path(tmp)
        t0 = time.perf_counter()
        plate = make_plate(tmp_path / "plate.zarr", plate_format=96, fields=fields, size=size,
                           phenotype="foci", seed=11)
        make_s = time.perf_counter() - t0
        model = bundled_model_path("foci_vgg")
        t0 = time.perf_counter()
        load_classifier(model)
        load_s = time.perf_counter() - t0

        from napari_pcim.plate_io import open_plate

        chosen = open_plate(plate).wells[:wells]

        def job() -> BatchJob:
            return BatchJob(plate=str(plate), model=str(model), method=method, seed=0, device=device,
                            options=options, wells=list(chosen))

        threads = torch.get_num_threads()
        local = run_plate(job(), tmp_path / "local.zarr")
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
        "cost_model": "T(N) = cluster_start + model_load + fields * seconds_per_field / N",
    }


def cost(figures: dict[str, Any], fields: int, n_workers: int, seconds_per_field: float | None = None) -> float:
    """Predicted wall seconds for ``fields`` on ``n_workers`` from measured figures."""
    spf = seconds_per_field if seconds_per_field is not None else figures["seconds_per_field_in_process"]
    return figures["cluster_start_seconds"] + figures["model_load_seconds"] + fields * spf / n_workers
