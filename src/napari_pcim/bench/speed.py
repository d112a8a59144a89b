"""``napari-pcim bench speed``: how fast are PCIM and RISE, and how close is RISE to its floor?

Uses the bundled foci classifier (``foci_vgg``; a freshly initialised model of the same
architecture if the file is missing, which is printed) on synthetic foci fields at the
classifier's input size. Reports (``--json`` for machine-readable output):

- ``forward_floor_seconds``: N forward passes alone (inference_mode, pre-built batch)
  at the best batch size among 16/32/64/128;
- ``rise_seconds_per_field`` (N masks, default 4000) and ``rise_over_floor`` (RISE wall
  time per field ÷ the floor);
- ``pcim_seconds_per_field`` and ``pcim_over_rise``;
- ``rise_peak_mib_n8000_512``: RISE's peak *extra* memory for N=8000 masks on one
  512×512 image, with a cheap stand-in forward (a 1×1 convolution + mean pool) so that
  only the explainer's own buffers count. CUDA: ``torch.cuda.max_memory_allocated``
  minus the allocation before; CPU: the peak resident set size (psutil, sampled every
  2 ms by a thread) minus the RSS before. ``rise_peak_mib_n1000_512`` shows it does not
  grow with N.

:func:`measure` returns the figures; the CLI handler is :func:`napari_pcim.cli.bench.bench_speed`.
"""

from __future__ import annotations

import os
import platform
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import torch


def _classifier(device: torch.device) -> tuple[Any, str]:
    from napari_pcim.classifier import ClassifierError, bundled_model_path, load_classifier, save_classifier

    try:
        return load_classifier(bundled_model_path("foci_vgg"), device=device), "bundled foci_vgg"
    except ClassifierError:
        from napari_pcim.training.architectures import build_model

        print("bench speed: bundled foci_vgg not found; using a freshly initialised VGG of the same architecture")
        torch.manual_seed(0)
        meta = {"channels": ["DAPI", "Actin", "GFP", "Brightfield"], "input_size": [128, 128],
                "normalization": {"mean": [0.0] * 4, "std": [1000.0] * 4},
                "classes": ["control", "treated"], "field_mode": "tile", "tile_overlap": 32, "arch": "vgg"}
        path = Path(tempfile.mkdtemp()) / "foci_vgg_random.pt"
        save_classifier(build_model("vgg").eval(), meta, path)
        return load_classifier(path, device=device), "random-init VGG (bundled model missing)"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def forward_floor(module: Any, x: torch.Tensor, n: int) -> tuple[float, int]:
    """(seconds for n forward passes at the best batch size, that batch size)."""
    best = (float("inf"), 16)
    with torch.inference_mode():
        for bs in (16, 32, 64, 128):
            batch = x[:1].expand(bs, *x.shape[1:]).contiguous()
            module(batch)  # warm-up
            _sync(x.device)
            t0 = time.perf_counter()
            reps = max(1, 128 // bs)
            for _ in range(reps):
                module(batch)
            _sync(x.device)
            per_image = (time.perf_counter() - t0) / (reps * bs)
            best = min(best, (per_image, bs))
        bs = best[1]
        batch = x[:1].expand(bs, *x.shape[1:]).contiguous()
        _sync(x.device)
        t0 = time.perf_counter()
        done = 0
        while done < n:
            k = min(bs, n - done)
            module(batch[:k])
            done += k
        _sync(x.device)
    return time.perf_counter() - t0, bs


def rise_peak_mib(n_masks: int, device: torch.device, size: int = 512) -> float:
    """Peak extra memory (MiB) of RISE on one size×size image with a cheap forward."""
    from napari_pcim.explainers.rise import RISEOptions, rise_attribute

    conv = torch.nn.Conv2d(4, 2, 1).to(device).eval()

    def forward(x: torch.Tensor) -> torch.Tensor:
        return conv(x).mean(dim=(2, 3))

    x = torch.randn(1, 4, size, size, device=device)
    target = torch.tensor([[1]], device=device)
    options = RISEOptions(n_masks=n_masks, batch_size=64)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        rise_attribute(forward, x, target, options=options)
        return (torch.cuda.max_memory_allocated(device) - before) / 2**20
    import psutil

    proc = psutil.Process(os.getpid())
    before = proc.memory_info().rss
    peak = [before]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], proc.memory_info().rss)
            time.sleep(0.002)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        rise_attribute(forward, x, target, options=options)
    finally:
        stop.set()
        thread.join()
    return (peak[0] - before) / 2**20


def measure(device: str | torch.device = "auto", n: int = 4000, n_fields: int = 2) -> dict[str, Any]:
    """The speed figures (module docstring) for ``n`` RISE masks on ``n_fields`` foci fields."""
    from napari_pcim.devices import resolve_device
    from napari_pcim.explainers import explain
    from napari_pcim.synth import generate_batch

    device = resolve_device(device)
    clf, model_name = _classifier(device)
    h, w = clf.meta.input_size
    fields = generate_batch("foci", n_fields, size=h, seed=0, positive_fraction=1.0).images
    x = clf.prepare(fields)
    explain(clf, fields[:1], method="rise", device=device, n_masks=64)  # warm-up (JIT profiling)
    floor, best_bs = forward_floor(clf.module, x, n)
    rise = explain(clf, fields, method="rise", device=device, n_masks=n, batch_size=best_bs)
    pcim = explain(clf, fields, method="pcim", device=device)
    rise_pf = rise.timings["total"] / n_fields
    pcim_pf = pcim.timings["total"] / n_fields
    return {
        "model": model_name,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda"
        else platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "input_size": [h, w],
        "fields": n_fields,
        "n_masks": n,
        "best_batch_size": best_bs,
        "forward_floor_seconds": floor,
        "rise_seconds_per_field": rise_pf,
        "rise_over_floor": rise_pf / floor,
        "pcim_seconds_per_field": pcim_pf,
        "pcim_steps_run": pcim.n_forward / n_fields,
        "pcim_over_rise": pcim_pf / rise_pf,
        "rise_peak_mib_n1000_512": rise_peak_mib(1000, device),
        "rise_peak_mib_n8000_512": rise_peak_mib(8000, device),
        "memory_measure": "torch.cuda.max_memory_allocated delta" if device.type == "cuda"
        else "process RSS peak delta (psutil, 2 ms sampling)",
    }
