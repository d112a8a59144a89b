"""``napari-pcim bench speed``: one cost model for every method, against the forward floor
and against the reference RISE algorithm.

Uses the bundled foci classifier (``foci_vgg``; a freshly initialised model of the same
architecture if the file is missing, which is printed) on treated synthetic foci fields
(evaluation seeds) at the classifier's input size. For each torch thread count (1 and
2 by default) it tunes the batch size (:mod:`napari_pcim.explainers.batching`) and
times, in 3 repeats with the contenders' order rotated each repeat, so that every
ratio is measured in the same run:

- ``floor``: N forward passes alone (inference_mode, a pre-built batch at the tuned
  batch size): the least any perturbation method can cost;
- ``rise``: ``explain(method="rise")`` at its defaults (stops when converged; cap N);
- ``rise_cap``: the same with ``tolerance=0`` (all N masks);
- ``reference``: the reference RISE algorithm (eclique/RISE, Petsiuk et al.): all N
  masks generated up front with numpy/scikit-image (grid 8, p 0.5), multiplied into the
  normalised image, batch 100, saliency = softmax scores ᵀ @ masks / (N·p);
- ``pcim``: ``explain(method="pcim")`` at one start, unsmoothed (:data:`PCIM_OPTIONS`):
  one forward and one backward pass per tile, the machinery's own cost; a model's
  random starts multiply its seconds and its forward passes by their number.

Per method it prints seconds per megapixel, forward passes per megapixel (a
forward+backward counts once), ``over_floor`` (seconds ÷ the floor's seconds for the
same number of forward passes) and ``over_reference`` (seconds ÷ the reference's;
median of the per-repeat ratios), plus RISE's masks used and the PxAP of the RISE and
reference maps (equal map quality). ``pcim_seconds_per_mp`` is PCIM's median over
``repeats`` runs on one field per size in ``pcim_sizes`` (sizes alternated, after one
untimed run each). ``rise_peak_mib_*`` (``memory=True``): RISE's peak extra memory
on a 512² image with a cheap forward (CUDA: max_memory_allocated delta; CPU: RSS peak).

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

import numpy as np
import torch

from napari_pcim.bench.quality_core import PCIM_ONE_START

#: PCIM's options here: one start from the image, unsmoothed (the machinery per pass).
PCIM_OPTIONS = PCIM_ONE_START

def _classifier(device: torch.device) -> tuple[Any, str]:
    from napari_pcim.classifier import (
        ClassifierError,
        bundled_model_path,
        load_classifier,
        save_classifier,
    )

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


def forward_floor(module: Any, x: torch.Tensor, n: int, batch: int) -> float:
    """Seconds for ``n`` forward passes of the image ``x[:1]`` in batches of ``batch``."""
    with torch.inference_mode():
        full = x[:1].expand(batch, *x.shape[1:]).contiguous()
        module(full)  # warm-up
        _sync(x.device)
        t0 = time.perf_counter()
        done = 0
        while done < n:
            k = min(batch, n - done)
            module(full[:k])
            done += k
        _sync(x.device)
    return time.perf_counter() - t0


def reference_masks(n: int, size: tuple[int, int], grid: int = 8, p: float = 0.5,
                    seed: int = 0) -> np.ndarray:
    """eclique/RISE's ``generate_masks``: (n, 1, H, W) float32, all made up front."""
    from skimage.transform import resize

    rng = np.random.default_rng(seed)
    cell = np.ceil(np.array(size) / grid).astype(int)
    up = (grid + 1) * cell
    cells = (rng.random((n, grid, grid)) < p).astype("float32")
    masks = np.empty((n, *size), dtype=np.float32)
    for i in range(n):
        y, x = rng.integers(0, cell[0]), rng.integers(0, cell[1])
        masks[i] = resize(cells[i], up, order=1, mode="reflect", anti_aliasing=False)[
            y : y + size[0], x : x + size[1]]
    return masks.reshape(n, 1, *size)


def reference_rise(module: Any, x: torch.Tensor, n: int, batch: int = 100, seed: int = 0) -> torch.Tensor:
    """The reference RISE (eclique/RISE ``RISE.forward``): saliency (K, H, W) of one image x (1, C, H, W)."""
    H, W = x.shape[-2:]
    masks = torch.from_numpy(reference_masks(n, (H, W), seed=seed)).to(x.device)
    with torch.inference_mode():
        stack = masks * x  # (N, C, H, W): every masked image at once, as the reference does
        scores = torch.cat([torch.softmax(module(stack[i : i + batch]).float(), dim=1)
                            for i in range(0, n, batch)])
        sal = scores.T @ masks.view(n, H * W)
    return (sal / n / 0.5).view(-1, H, W)


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


TARGET = "treated"


def _pxap(maps: list[np.ndarray], gts: list[np.ndarray]) -> float:
    from napari_pcim import metrics

    return float(np.mean([metrics.pxap(m, g) for m, g in zip(maps, gts)]))


def _one_setting(clf: Any, fields: np.ndarray, x: torch.Tensor, gts: list[np.ndarray], n: int,
                 repeats: int, device: torch.device, say: Any, t: int) -> dict[str, Any]:
    """The contenders' figures with the current torch threads (``t``), order rotated per repeat."""
    from napari_pcim.explainers import explain
    from napari_pcim.explainers.batching import tune

    n_fields = len(fields)
    mp = x.shape[-2] * x.shape[-1] / 1e6
    bs, per_image = tune(clf.module, x[:1], model=clf.sha256)
    runs: dict[str, list[float]] = {k: [] for k in ("floor", "rise", "rise_cap", "reference", "pcim")}
    passes: dict[str, float] = {}
    maps: dict[str, list[np.ndarray]] = {"rise": [], "reference": []}
    used: list[float] = []

    def floor() -> None:
        runs["floor"].append(sum(forward_floor(clf.module, x[i:i + 1], n, bs) for i in range(n_fields)))

    def rise(cap: bool) -> None:
        t0 = time.perf_counter()
        att = explain(clf, fields, method="rise", target=TARGET, device=device, n_masks=n,
                      **({"tolerance": 0.0} if cap else {}))
        runs["rise_cap" if cap else "rise"].append(time.perf_counter() - t0)
        passes["rise_cap" if cap else "rise"] = att.n_forward
        if not cap:
            used.append(float(att.info.get("masks_used", n)))
            maps["rise"] = [att.maps[i, 0] for i in range(n_fields)]

    def reference() -> None:
        t0 = time.perf_counter()
        sal = [reference_rise(clf.module, x[i:i + 1], n, seed=i) for i in range(n_fields)]
        runs["reference"].append(time.perf_counter() - t0)
        passes["reference"] = n * n_fields
        k = list(clf.meta.classes).index(TARGET)
        maps["reference"] = [s[k].cpu().numpy() for s in sal]

    def pcim() -> None:
        t0 = time.perf_counter()
        att = explain(clf, fields, method="pcim", target=TARGET, device=device, **PCIM_OPTIONS)
        runs["pcim"].append(time.perf_counter() - t0)
        passes["pcim"] = att.n_forward

    order = [floor, lambda: rise(False), lambda: rise(True), reference, pcim]
    for r in range(repeats):
        for f in order[r % len(order):] + order[: r % len(order)]:  # rotate the order
            f()
        say(f"bench speed: threads {t}, repeat {r + 1}/{repeats} done")
    med = {k: float(np.median(v)) for k, v in runs.items()}
    floor_per_pass = med["floor"] / (n * n_fields)
    row: dict[str, Any] = {"tuned_batch_size": bs, "sweep_seconds_per_image": per_image,
                           "floor_seconds_per_image": floor_per_pass,
                           "rise_masks_used_mean": float(np.mean(used)),
                           "rise_masks_used_share": float(np.mean(used)) / n}
    for k in ("rise", "rise_cap", "reference", "pcim"):
        ratios = [a / b for a, b in zip(runs[k], runs["reference"])]
        row[k] = {
            "seconds_per_field": med[k] / n_fields,
            "seconds_per_mp": med[k] / n_fields / mp,
            "forward_passes_per_mp": passes[k] / n_fields / mp,
            "over_floor": med[k] / (passes[k] * floor_per_pass),
            "over_reference": float(np.median(ratios)),
        }
    row["reference_over_rise"] = 1 / row["rise"]["over_reference"]
    row["pxap_rise"] = _pxap(maps["rise"], gts)
    row["pxap_reference"] = _pxap(maps["reference"], gts)
    return row


def measure(device: str | torch.device = "auto", n: int = 4000, n_fields: int = 1,
            threads: tuple[int, ...] = (1, 2), repeats: int = 3, pcim_sizes: tuple[int, ...] = (512, 2048),
            memory: bool = False, log: Any = None) -> dict[str, Any]:
    """The cost-model figures (module docstring) for ``n`` RISE masks on ``n_fields`` foci fields."""
    from napari_pcim.bench.quality import HELD_OUT_SEED
    from napari_pcim.devices import resolve_device
    from napari_pcim.explainers import explain
    from napari_pcim.synth import generate_field

    say = log or (lambda _m: None)
    device = resolve_device(device)
    clf, model_name = _classifier(device)
    h, w = clf.meta.input_size
    made = [generate_field("foci", True, size=h, seed=HELD_OUT_SEED + i) for i in range(n_fields)]
    fields = np.stack([f.image for f in made])
    gts = [f.labels["gt"] > 0 for f in made]
    x = clf.prepare(fields)
    before = torch.get_num_threads()
    out: dict[str, Any] = {
        "model": model_name, "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda"
        else platform.processor() or platform.machine(),
        "torch": torch.__version__, "cpu_count": os.cpu_count(), "input_size": [h, w],
        "fields": n_fields, "n_masks_cap": n, "repeats": repeats, "threads": {},
    }
    try:
        for t in threads:
            torch.set_num_threads(t)
            explain(clf, fields[:1], method="rise", device=device, n_masks=64)  # warm-up, tunes the batch
            # warm-up, tunes the fwd+bwd batch
            explain(clf, fields[:1], method="pcim", device=device, **PCIM_OPTIONS)
            out["threads"][str(t)] = _one_setting(clf, fields, x, gts, n, repeats, device, say, t)
        torch.set_num_threads(max(threads))
        out["pcim_threads"] = max(threads)
        out["pcim_seconds_per_mp"] = _pcim_per_mp(clf, pcim_sizes, repeats, device, say)
        if len(pcim_sizes) > 1:
            sp = out["pcim_seconds_per_mp"]
            out["pcim_largest_over_smallest"] = sp[str(max(pcim_sizes))] / sp[str(min(pcim_sizes))]
        if memory:
            out["rise_peak_mib_n1000_512"] = rise_peak_mib(1000, device)
            out["rise_peak_mib_n8000_512"] = rise_peak_mib(8000, device)
    finally:
        torch.set_num_threads(before)
    return out


def _pcim_per_mp(clf: Any, sizes: tuple[int, ...], repeats: int, device: torch.device,
                 say: Any) -> dict[str, float]:
    """PCIM's median seconds per megapixel per field side: one untimed run per size (its
    batch tuning, first-call costs), then ``repeats`` rounds alternating the sizes."""
    from napari_pcim.bench.quality import HELD_OUT_SEED
    from napari_pcim.explainers import explain
    from napari_pcim.synth import generate_field

    fields = {s: generate_field("foci", True, size=s, seed=HELD_OUT_SEED).image for s in sizes}
    for s in sizes:
        explain(clf, fields[s], method="pcim", device=device, **PCIM_OPTIONS)
    runs: dict[int, list[float]] = {s: [] for s in sizes}
    for r in range(repeats):
        for s in (sizes if r % 2 == 0 else sizes[::-1]):
            t0 = time.perf_counter()
            explain(clf, fields[s], method="pcim", device=device, **PCIM_OPTIONS)
            runs[s].append((time.perf_counter() - t0) / (s * s / 1e6))
        say(f"bench speed: PCIM sizes, repeat {r + 1}/{repeats} done")
    return {str(s): float(np.median(v)) for s, v in runs.items()}


def format_table(result: dict[str, Any]) -> str:
    """The figures of :func:`measure` as a plain-text table."""
    head = (f"{result['model']} on {result['device']} ({result['device_name']}, {result['cpu_count']} "
            f"cores), torch {result['torch']}, {result['input_size'][0]}² fields × {result['fields']}, "
            f"N = {result['n_masks_cap']} (cap), {result['repeats']} repeats, order rotated")
    lines = [head]
    for t, row in result["threads"].items():
        lines.append(f"\ntorch threads {t}: tuned batch {row['tuned_batch_size']}, floor "
                     f"{row['floor_seconds_per_image'] * 1e3:.2f} ms/image; RISE used "
                     f"{row['rise_masks_used_mean']:.0f} masks ({row['rise_masks_used_share']:.0%} of the cap); "
                     f"PxAP RISE {row['pxap_rise']:.3f} vs reference {row['pxap_reference']:.3f}")
        lines.append(f"  {'method':10s} {'s/MP':>9s} {'passes/MP':>10s} {'÷ floor':>8s} {'÷ reference':>12s}")
        for k in ("rise", "rise_cap", "reference", "pcim"):
            r = row[k]
            lines.append(f"  {k:10s} {r['seconds_per_mp']:9.2f} {r['forward_passes_per_mp']:10.0f} "
                         f"{r['over_floor']:8.2f} {r['over_reference']:12.2f}")
    for size, v in result.get("pcim_seconds_per_mp", {}).items():
        lines.append(f"PCIM {size}²: {v:.2f} s/MP (torch threads {result['pcim_threads']})")
    if "pcim_largest_over_smallest" in result:
        lines.append(f"PCIM s/MP largest ÷ smallest field: {result['pcim_largest_over_smallest']:.2f}")
    for k in ("rise_peak_mib_n1000_512", "rise_peak_mib_n8000_512"):
        if k in result:
            lines.append(f"{k}: {result[k]:.1f}")
    return "\n".join(lines)


def format_markdown(result: dict[str, Any]) -> str:
    """The figures of :func:`measure` as the markdown tables of docs/benchmarks.md."""
    head = (f"{result['model']}, {result['input_size'][0]}² fields × {result['fields']}, RISE cap "
            f"N = {result['n_masks_cap']}, {result['repeats']} repeats with the contenders' order "
            f"rotated; {result['device']} ({result['device_name']}, {result['cpu_count']} cores), "
            f"torch {result['torch']}.")
    out = [head, ""]
    for t, row in result["threads"].items():
        line = (f"**torch threads {t}**: tuned batch {row['tuned_batch_size']}, forward floor "
                f"{row['floor_seconds_per_image'] * 1e3:.2f} ms/image; RISE used "
                f"{row['rise_masks_used_mean']:.0f} of {result['n_masks_cap']} masks; PxAP of the "
                f"maps: RISE {row['pxap_rise']:.3f}, reference {row['pxap_reference']:.3f}.")
        out += [line, "",
                "| method | s/MP | forward passes/MP | ÷ forward floor | ÷ reference RISE |",
                "| --- | --- | --- | --- | --- |"]
        names = {"rise": "RISE (defaults, stops when converged)", "rise_cap": "RISE, every mask (tolerance 0)",
                 "reference": "reference RISE (eclique/RISE algorithm)", "pcim": "PCIM (defaults)"}
        for k, label in names.items():
            r = row[k]
            out.append(f"| {label} | {r['seconds_per_mp']:.3g} | {r['forward_passes_per_mp']:.0f} | "
                       f"{r['over_floor']:.2f} | {r['over_reference']:.2f} |")
        out.append("")
    for size, v in result.get("pcim_seconds_per_mp", {}).items():
        out.append(f"- PCIM at {size}²: {v:.3g} s/MP (torch threads {result['pcim_threads']}, "
                   f"median of {result['repeats']})")
    if "pcim_largest_over_smallest" in result:
        out.append(f"- PCIM s/MP, largest ÷ smallest field: {result['pcim_largest_over_smallest']:.2f}")
    for k, label in (("rise_peak_mib_n1000_512", "N = 1000"), ("rise_peak_mib_n8000_512", "N = 8000")):
        if k in result:
            out.append(f"- RISE peak extra memory on a 512² image, {label}: {result[k]:.0f} MiB")
    return "\n".join(out)
