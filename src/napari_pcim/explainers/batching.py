"""Self-tuning batch size for model calls: a short measured sweep on first use, cached.

The best number of images per forward pass depends on the model, the device, the
number of torch threads and the tile size: with one CPU thread a small VGG is
fastest at batch 16 (2.0 ms/image) and 1.8× slower at 64, while a GPU wants large
batches. No fixed rule covers that, so :func:`tuned_batch_size` times a few batch
sizes on the real model and tile (a warm-up call, then the best of two timed calls
per size), keeps the fastest per image, and caches the answer per
:func:`cache_key` — (model sha256, device, torch threads, tile shape, forward or
forward+backward) — in memory and in ``<cache_dir>/batch_sizes.json`` (written
atomically), so the sweep runs once per machine setting. An explicit ``batch_size``
always wins: callers tune only when the option is None.

Hand-written because no maintained library tunes a TorchScript inference batch on CPU
and GPU alike; the sweep is a few dozen lines and costs about a second.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

log = logging.getLogger(__name__)

#: Batch sizes tried, smallest first.
CANDIDATES: tuple[int, ...] = (4, 8, 16, 32, 64, 128)
#: On a GPU also larger ones: on an H200 a 128² VGG still gained per image past 128.
GPU_CANDIDATES: tuple[int, ...] = (*CANDIDATES, 256, 512, 1024)
#: One batch holds at most this many input values (64 MiB float32), as RISE's batches;
#: on a GPU 16× that (1 GiB).
MAX_VALUES = 2**24
GPU_MAX_VALUES = 2**28
#: Used where nothing can be measured (no sample tile).
FALLBACK = 16
CACHE_FILE = "batch_sizes.json"

_memory: dict[str, tuple[int, float]] = {}


def cache_key(model: str | None, device: Any, threads: int, shape: Sequence[int], grad: bool = False) -> str:
    """The cache key of one setting: ``"sha256|device|threads|C×H×W|fwd"`` (``fwd+bwd`` with grad)."""
    dims = "x".join(str(int(s)) for s in shape)
    return f"{model or 'unknown'}|{device}|{int(threads)}|{dims}|{'fwd+bwd' if grad else 'fwd'}"


def _disk_path() -> Any:
    from napari_pcim.cache import cache_dir

    return cache_dir() / CACHE_FILE


def _read_disk() -> dict[str, tuple[int, float]]:
    """The disk cache: key → (batch, seconds per image); unreadable entries are ignored."""
    try:
        data = json.loads(_disk_path().read_text())
    except (OSError, ValueError):
        return {}
    out = {}
    for k, v in (data.items() if isinstance(data, dict) else ()):
        if (isinstance(v, list) and len(v) == 2 and isinstance(v[0], int) and v[0] >= 1
                and isinstance(v[1], float) and v[1] > 0):
            out[str(k)] = (v[0], v[1])
    return out


def _write_disk(key: str, value: tuple[int, float]) -> None:
    from napari_pcim.atomic import write_json

    try:
        data = {k: list(v) for k, v in _read_disk().items()}
        data[key] = [int(value[0]), float(value[1])]
        path = _disk_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(path, data, overwrite=True)
    except OSError as exc:  # a read-only cache folder costs a sweep per session, nothing else
        log.info("batch size cache not written (%s)", exc)


def max_batch(shape: Sequence[int], gpu: bool = False) -> int:
    """The largest batch of images shaped ``shape`` (C, H, W) within :data:`MAX_VALUES`
    values (:data:`GPU_MAX_VALUES` on a GPU)."""
    per = 1
    for s in shape:
        per *= int(s)
    return max(1, (GPU_MAX_VALUES if gpu else MAX_VALUES) // max(per, 1))


def sweep(forward: Callable[[Any], Any], sample: Any, *, grad: bool = False,
          candidates: Sequence[int] | None = None) -> dict[int, float]:
    """Seconds per image of ``forward`` at each batch size (a warm-up, then the best of 2 calls).

    ``sample`` (1, C, H, W) is repeated to each batch size (``candidates``: default
    :data:`CANDIDATES`, :data:`GPU_CANDIDATES` on CUDA). With ``grad`` the time is of
    a forward and a backward pass of the summed logits w.r.t. the input (PCIM's step).
    Sizes above :func:`max_batch` are skipped; the sweep stops early once two sizes in a
    row are 30 % slower per image than the best so far.
    """
    import torch

    device = sample.device
    gpu = device.type == "cuda"
    cap = max_batch(sample.shape[1:], gpu)
    if candidates is None:
        candidates = GPU_CANDIDATES if gpu else CANDIDATES
    sizes = [b for b in candidates if b <= cap] or [cap]
    out: dict[int, float] = {}
    worse = 0

    def call(x: Any) -> None:
        if grad:
            xg = x.detach().clone().requires_grad_(True)
            forward(xg).float().sum().backward()
        else:
            with torch.inference_mode():
                forward(x)
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for bs in sizes:
        batch = sample[:1].expand(bs, *sample.shape[1:]).contiguous()
        call(batch)  # warm-up (TorchScript profiling, allocator)
        best = float("inf")
        for _ in range(2):
            t0 = time.perf_counter()
            call(batch)
            best = min(best, time.perf_counter() - t0)
        out[bs] = best / bs
        fastest = min(out.values())
        worse = worse + 1 if out[bs] > 1.3 * fastest else 0
        if worse >= 2:
            break
    return out


def tune(forward: Callable[[Any], Any], sample: Any, *, model: str | None = None,
         grad: bool = False, use_disk: bool = True) -> tuple[int, float]:
    """(fastest batch size, seconds per image at it) of ``forward`` on tiles like ``sample``.

    ``sample`` (1, C, H, W) on the compute device. ``model``: the model file's sha256
    (None: cached in memory only, under the forward's id, for this process). The first
    call for a :func:`cache_key` runs :func:`sweep` (about a second on CPU); later calls,
    and later sessions via the disk cache, reuse its answer. ``grad=True`` tunes a
    forward+backward pass (PCIM's optimisation batch).
    """
    import torch

    device = sample.device
    where = device.type if device.index is None else f"{device.type}:{device.index}"
    key = cache_key(model if model is not None else f"id{id(forward)}", where,
                    torch.get_num_threads(), sample.shape[1:], grad)
    if key in _memory:
        return _memory[key]
    persist = use_disk and model is not None
    if persist:
        found = _read_disk().get(key)
        if found is not None:
            _memory[key] = found
            return found
    per_image = sweep(forward, sample[:1], grad=grad)
    best = min(per_image, key=lambda b: (per_image[b], b))
    log.info("batch size %d for %s (seconds per image: %s)", best, key,
             {b: round(t, 5) for b, t in per_image.items()})
    _memory[key] = (best, per_image[best])
    if persist:
        _write_disk(key, _memory[key])
    return _memory[key]


def tuned_batch_size(forward: Callable[[Any], Any], sample: Any, *, model: str | None = None,
                     grad: bool = False, use_disk: bool = True) -> int:
    """The fastest batch size of ``forward`` on tiles like ``sample`` (see :func:`tune`).

    PCIM (or any method) calls it with ``grad=True`` for its optimisation batch:
    ``tuned_batch_size(job.forward, job.tiles[:1], model=job.classifier.sha256, grad=True)``.
    """
    if sample is None or sample.shape[0] == 0:
        return FALLBACK
    return tune(forward, sample, model=model, grad=grad, use_disk=use_disk)[0]


def forget(memory_only: bool = True) -> None:
    """Drop the in-memory cache (tests, or after changing torch's thread count for good)."""
    _memory.clear()
    if not memory_only:
        try:
            _disk_path().unlink()
        except OSError:
            pass


#: A forward+backward pass costs about this many forward passes (PCIM, gradient methods).
BACKWARD_FACTOR = 3.0
#: RISE's typical share of its mask cap when it stops on its tolerance: 26–43 % of 4000 on
#: the bundled models (`napari-pcim bench tune rise stopping`, docs/benchmarks.md).
RISE_TYPICAL_SHARE = 0.35


def forward_passes(method: str, options: dict[str, Any], n_tiles: int) -> tuple[float, float] | None:
    """(typical, most) forward-pass equivalents of ``method`` on a field of ``n_tiles`` tiles.

    The cost model behind ``bench speed`` and the GUI's estimate: RISE makes one pass per
    mask and tile (typically :data:`RISE_TYPICAL_SHARE` of the cap when its tolerance
    stops it), PCIM one forward+backward per step, random start and tile, Integrated
    Gradients one per step, the other gradient methods one; every method adds the
    probability pass. Options not given take the method's defaults (its options
    dataclass). None for a method this model does not know (occlusion, ablation: their
    passes depend on the regions).
    """
    from dataclasses import asdict

    from napari_pcim.explainers.registry import get_explainer, registered

    if method in registered():
        options = {**asdict(get_explainer(method).options_cls()), **options}
    prob = float(n_tiles)
    if method == "rise":
        cap = float(options["n_masks"]) * n_tiles
        share = RISE_TYPICAL_SHARE if float(options.get("tolerance") or 0) > 0 else 1.0
        return prob + share * cap, prob + cap
    if method == "pcim":
        from napari_pcim.explainers.pcim_options import PCIMOptions

        starts = PCIMOptions(starts=int(options["starts"]),
                             start_noise=float(options["start_noise"])).starts_run()
        most = prob + BACKWARD_FACTOR * float(options["steps"]) * starts * n_tiles
        return most, most
    if method == "integrated_gradients":
        most = prob + BACKWARD_FACTOR * float(options["n_steps"]) * n_tiles
        return most, most
    if method in ("saliency", "input_x_gradient", "gradcam"):
        most = prob + BACKWARD_FACTOR * n_tiles
        return most, most
    return None


def estimate_text(typical_s: float, most_s: float) -> str:
    """``"about 40 s on this machine"`` (with ``", at most 80 s"`` when the two differ)."""
    def fmt(s: float) -> str:
        if s < 1:
            return "under 1 s"
        return f"{s:.0f} s" if s < 90 else f"{s / 60:.1f} min"

    text = f"{'' if typical_s < 1 else 'about '}{fmt(typical_s)} on this machine"
    return text + (f", at most {fmt(most_s)}" if most_s > 1.25 * typical_s else "")
