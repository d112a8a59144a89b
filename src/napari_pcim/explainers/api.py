"""``explain()``: attribution maps of raw fields for a classifier, with tiling, devices,
progress and cancel, returned as an :class:`Attribution`.

This is the one entry point the GUI, the CLI and the batch runner call. It checks
the input before any compute (channels, NaN/inf, empty fields, target class,
option names and ranges, differentiability for PCIM), normalises the fields with
the classifier's metadata, cuts them into classifier-sized tiles (or resizes
them) as the metadata says, runs one method core (:mod:`.pcim`, :mod:`.rise`)
on all tiles of all fields as one batch against the field-level target, and
blends the tile maps back onto each field's own pixel grid (:mod:`.tiling`).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from dataclasses import fields as dc_fields
from typing import Any

import numpy as np
import torch

from napari_pcim.classifier import Classifier
from napari_pcim.devices import resolve_device
from napari_pcim.explainers.pcim import PCIMOptions, check_differentiable, pcim_attribute
from napari_pcim.explainers.regions import RegionMasks, slic_labels
from napari_pcim.explainers.pixelcam_readout import PixelCAMOptions, check_localize, pixelcam_attribute
from napari_pcim.explainers.rise import GridMasks, RISEOptions, rise_attribute
from napari_pcim.tiling import TilePlan
from napari_pcim.baseline_images import make_baseline

log = logging.getLogger(__name__)

#: Method name → its options dataclass (field defaults and ``metadata["help"]``).
METHOD_OPTIONS: dict[str, type] = {"pcim": PCIMOptions, "rise": RISEOptions, "pixelcam": PixelCAMOptions}
METHODS = tuple(METHOD_OPTIONS)
#: Display names used in layer and channel names ("PCIM · treated").
METHOD_LABELS = {"pcim": "PCIM", "rise": "RISE", "pixelcam": "PixelCAM"}


class Cancelled(Exception):
    """``should_stop()`` returned True: the explanation was abandoned, nothing is returned."""


@dataclass
class Attribution:
    """Attribution maps of N fields for T target classes each.

    ``maps`` (N, T, Y, X) float32 on each field's own pixel grid; ``targets`` (N, T)
    class indices; ``classes`` the classifier's class names; ``probabilities``
    (N, K) field-level class probabilities of the unperturbed fields; ``options``
    the resolved method options (plus ``seed``); ``timings`` in seconds
    (``total``, ``per_field``, ``setup``, ``attribution``, ``forward_passes``:
    time inside the model's forward passes, PCIM's including backward);
    ``n_forward``: images passed through the model.
    """

    maps: np.ndarray
    targets: np.ndarray
    classes: tuple[str, ...]
    probabilities: np.ndarray
    method: str
    options: dict[str, Any]
    timings: dict[str, float]
    device: str
    n_forward: int = 0

    def _class_index(self, target: int | str) -> int:
        if isinstance(target, str):
            if target not in self.classes:
                raise ValueError(f"unknown class {target!r}; classes: {list(self.classes)}")
            return self.classes.index(target)
        return int(target)

    def map(self, field_index: int = 0, target: int | str | None = None) -> np.ndarray:
        """The (Y, X) map of one field for one target class (name or index; None: the first)."""
        if not 0 <= field_index < self.maps.shape[0]:
            raise IndexError(f"field_index {field_index} out of range for {self.maps.shape[0]} field(s)")
        if target is None:
            return self.maps[field_index, 0]
        k = self._class_index(target)
        hits = np.flatnonzero(self.targets[field_index] == k)
        if hits.size == 0:
            explained = [self.classes[int(t)] for t in self.targets[field_index]]
            raise ValueError(
                f"class {self.classes[k] if 0 <= k < len(self.classes) else k!r} was not explained "
                f"for field {field_index}; explained: {explained}"
            )
        return self.maps[field_index, int(hits[0])]

    def label(self, field_index: int = 0, t: int = 0) -> str:
        """Display name of map ``t`` of a field, e.g. ``"PCIM · treated"``."""
        name = METHOD_LABELS.get(self.method, self.method.upper())
        return f"{name} · {self.classes[int(self.targets[field_index, t])]}"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe summary (no maps): method, classes, targets, probabilities, options, timings."""
        return {
            "method": self.method,
            "classes": list(self.classes),
            "shape": list(self.maps.shape),
            "targets": self.targets.astype(int).tolist(),
            "target_names": [[self.classes[int(t)] for t in row] for row in self.targets],
            "probabilities": self.probabilities.astype(float).tolist(),
            "options": {k: _json_safe(v) for k, v in self.options.items()},
            "timings": {k: float(v) for k, v in self.timings.items()},
            "device": self.device,
            "n_forward": int(self.n_forward),
        }


def _json_safe(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, np.ndarray | torch.Tensor):
        return f"<array shape={list(value.shape)}>"
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return repr(value)


def method_defaults(method: str) -> Any:
    """A fresh options dataclass of ``method`` holding its defaults."""
    if method not in METHOD_OPTIONS:
        raise ValueError(f"unknown method {method!r}; expected one of {list(METHODS)}")
    return METHOD_OPTIONS[method]()


def _resolve_options(method: str, options: dict[str, Any]) -> Any:
    cls = METHOD_OPTIONS[method]
    names = [f.name for f in dc_fields(cls)]
    unknown = sorted(set(options) - set(names))
    if unknown:
        raise ValueError(f"unknown {method} option(s) {unknown}; valid options: {names}")
    opts = cls(**options)
    opts.validate()
    return opts


def _as_batch(fields: Any) -> np.ndarray:
    """(C,Y,X), (N,C,Y,X) or a list of same-shape (C,Y,X) fields → (N, C, Y, X) array."""
    if isinstance(fields, np.ndarray | torch.Tensor):
        arr = np.asarray(fields.cpu() if isinstance(fields, torch.Tensor) else fields)
        if arr.ndim == 3:
            arr = arr[None]
    else:
        items = [np.asarray(f) for f in fields]
        if not items:
            raise ValueError("no fields given: expected a (C, Y, X) field or a list of them")
        for i, f in enumerate(items):
            if f.ndim != 3:
                raise ValueError(f"field {i} has shape {f.shape}; expected (C, Y, X)")
            if f.shape != items[0].shape:
                raise ValueError(
                    f"fields must share one shape: field 0 is {items[0].shape}, field {i} is {f.shape}"
                )
        arr = np.stack(items)
    if arr.ndim != 4:
        raise ValueError(f"fields must be (C, Y, X) or (N, C, Y, X), got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"empty field(s): shape {arr.shape} (N, C, Y, X) has a zero-size axis")
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise ValueError(f"fields must be numeric, got dtype {arr.dtype}")
    return arr


def _check_finite(arr: np.ndarray, channel_names: Sequence[str]) -> None:
    if not np.issubdtype(arr.dtype, np.floating):
        return
    bad = ~np.isfinite(arr)
    if bad.any():
        n, c = np.argwhere(bad.any(axis=(2, 3)))[0]
        what = "NaN" if np.isnan(arr[n, c]).any() else "inf"
        raise ValueError(
            f"field {n}, channel {c} ({channel_names[c]!r}) contains {what} values "
            f"({int(bad[n, c].sum())} pixel(s)); replace them before explaining"
        )


def _resolve_target(target: Any, classes: Sequence[str]) -> tuple[str, int | None]:
    """('predicted'|'all'|'index', class index or None); unknown classes raise ValueError."""
    if target is None or (isinstance(target, str) and target.lower() == "predicted"):
        return "predicted", None
    if isinstance(target, str) and target.lower() == "all":
        return "all", None
    if isinstance(target, str):
        if target in classes:
            return "index", list(classes).index(target)
        lower = [c.lower() for c in classes]
        if target.lower() in lower:
            return "index", lower.index(target.lower())
        raise ValueError(
            f"unknown target class {target!r}; classes: {list(classes)} (or 'predicted', 'all')"
        )
    if isinstance(target, int | np.integer) and not isinstance(target, bool):
        if 0 <= int(target) < len(classes):
            return "index", int(target)
        raise ValueError(
            f"target index {int(target)} out of range; classes: "
            + ", ".join(f"{i}={c}" for i, c in enumerate(classes))
        )
    raise ValueError(f"target must be None, 'predicted', 'all', a class name or index; got {target!r}")


def _regions_batch(regions: Any, n: int, shape: tuple[int, int]) -> np.ndarray:
    arr = np.asarray(regions)
    if arr.ndim == 2:
        arr = np.broadcast_to(arr, (n, *arr.shape))
    if arr.shape != (n, *shape):
        raise ValueError(
            f"regions must be a label image shaped {shape} (or ({n}, {shape[0]}, {shape[1]})) "
            f"like the field(s), got {np.asarray(regions).shape}"
        )
    if not np.issubdtype(arr.dtype, np.integer) and arr.dtype != bool:
        raise ValueError(f"regions must be an integer label image, got dtype {arr.dtype}")
    return arr


def _autocast_dtype(forward: Callable, tiles: torch.Tensor) -> torch.dtype | None:
    """bf16/fp16 when autocast forwards agree with float32 on a few tiles; else None."""
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    sample = tiles[:8]
    try:
        with torch.inference_mode():
            ref = torch.softmax(forward(sample).float(), dim=1)
            with torch.autocast("cuda", dtype=dtype):
                low = torch.softmax(forward(sample).float(), dim=1)
    except RuntimeError as exc:
        log.info("RISE: autocast %s unavailable for this model (%s); using float32", dtype, exc)
        return None
    err = float((ref - low).abs().max())
    if not math.isfinite(err) or err > 0.02:
        log.info("RISE: autocast %s changes probabilities by %.3g; using float32", dtype, err)
        return None
    return dtype


def explain(
    classifier: Classifier,
    fields: Any,
    method: str = "pcim",
    target: Any = None,
    device: str | torch.device | None = "auto",
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    seed: int = 0,
    plate_channels: Sequence[str] | None = None,
    **options: Any,
) -> Attribution:
    """Explain raw field(s) for ``classifier`` with ``method`` ("pcim", "rise" or "pixelcam").

    ``fields``: (C, Y, X), (N, C, Y, X) or a list of same-shape raw fields (channels
    in the model's order, or named by ``plate_channels``). ``target``: None or
    "predicted" (each field's predicted class), "all" (every class), a class
    name or index. ``options`` are the method's (see :data:`METHOD_OPTIONS`).
    ``progress(done, total)`` reports work units; ``should_stop()`` is polled at
    least once per batch/step and raises :class:`Cancelled`. Bad input raises
    ``ValueError`` before any compute.
    """
    t_start = time.perf_counter()
    if method not in METHOD_OPTIONS:
        raise ValueError(f"unknown method {method!r}; expected one of {list(METHODS)}")
    opts = _resolve_options(method, options)
    if method == "pixelcam":
        check_localize(classifier)
    meta = classifier.meta
    classes = tuple(meta.classes)
    arr = _as_batch(fields)
    N, C, Y, X = arr.shape
    if plate_channels is not None:
        if len(plate_channels) != C:
            raise ValueError(
                f"fields have {C} channel(s) but {len(plate_channels)} plate channel names were "
                f"given: {list(plate_channels)}"
            )
        classifier.channel_indices(plate_channels)  # raises if a model channel is missing
        names = list(plate_channels)
    elif C != len(meta.channels):
        raise ValueError(
            f"fields have {C} channel(s) but the classifier expects {len(meta.channels)}: "
            f"{meta.channels}; pass plate_channels= to map the plate's channels by name"
        )
    else:
        names = list(meta.channels)
    _check_finite(arr, names)
    mode, fixed = _resolve_target(target, classes)
    regions = None
    if method == "rise" and opts.segmentation == "labels":
        regions = _regions_batch(opts.regions, N, (Y, X))

    dev = resolve_device(device)
    classifier.to(dev)
    module = classifier.module
    was_training = module.training
    grad_flags = [p.requires_grad for p in module.parameters()]
    module.eval()
    for p in module.parameters():  # frozen: only the explainer's own variables learn
        p.requires_grad_(False)
    try:
        x = classifier.prepare(arr, plate_channels)  # (N, C, Y, X) normalised, on dev
        plan = TilePlan.for_classifier(meta, (Y, X))
        tiles = plan.split(x)
        if method == "pcim":
            check_differentiable(module, tiles)
        with torch.inference_mode():
            logits = torch.cat([classifier.field_logits(x[i : i + 1]) for i in range(N)])
            probs = torch.softmax(logits.float(), dim=1).cpu().numpy()
        if mode == "all":
            targets = np.tile(np.arange(len(classes)), (N, 1))
        elif mode == "index":
            targets = np.full((N, 1), fixed)
        else:
            targets = probs.argmax(axis=1)[:, None]
        targets = targets.astype(np.int64)
        tile_targets = torch.from_numpy(targets).to(dev).repeat_interleave(plan.n_tiles, dim=0)
        raw_zero = torch.tensor([-m / s for m, s in zip(meta.mean, meta.std)], device=dev)
        # Baselines are computed on the whole field (a field's median, not a tile's), then tiled.
        baselines = None if method == "pixelcam" else plan.split(
            make_baseline(x, opts.baseline, raw_zero=raw_zero, blur_sigma=opts.blur_sigma)
        )
        t_setup = time.perf_counter() - t_start
        stats: dict[str, float] = {}
        t0 = time.perf_counter()
        if method == "pcim":
            tile_maps = pcim_attribute(
                module, tiles, tile_targets, options=opts, baselines=baselines,
                tiles_per_item=plan.n_tiles, progress=progress, should_stop=should_stop, stats=stats,
            )
            fwd_seconds = stats["optimisation_seconds"]
        elif method == "pixelcam":
            tile_maps = pixelcam_attribute(
                module.localize, tiles, tile_targets, options=opts,
                progress=progress, should_stop=should_stop, stats=stats,
            )
            fwd_seconds = stats["forward_seconds"]
        else:
            gen = torch.Generator().manual_seed(int(seed))
            if opts.segmentation == "grid":
                masks = GridMasks(plan.tile, opts.grid, opts.p, gen, dev)
            else:
                if regions is None:  # slic
                    xs = x.float().cpu().numpy()
                    regions = np.stack([slic_labels(xs[i], opts.n_segments) for i in range(N)])
                lab = torch.from_numpy(np.ascontiguousarray(regions, dtype=np.int64)).to(dev)
                labels = plan.split_labels(lab)
                masks = RegionMasks(labels, opts.p, opts.region_sigma, gen)
            autocast = (
                _autocast_dtype(module, tiles) if dev.type == "cuda" and opts.mixed_precision else None
            )
            tile_maps = rise_attribute(
                module, tiles, tile_targets, n_masks=opts.n_masks, p=opts.p, masks=masks,
                baselines=baselines, batch_size=opts.batch_size, center=opts.center,
                autocast_dtype=autocast,
                progress=progress, should_stop=should_stop, stats=stats,
            )
            fwd_seconds = stats["forward_seconds"]
        maps = plan.assemble(tile_maps).cpu().numpy().astype(np.float32, copy=False)
        t_attr = time.perf_counter() - t0
    finally:
        for p, flag in zip(module.parameters(), grad_flags):
            p.requires_grad_(flag)
        module.train(was_training)
    total = time.perf_counter() - t_start
    resolved = {f.name: getattr(opts, f.name) for f in dc_fields(opts)}
    resolved["seed"] = int(seed)
    return Attribution(
        maps=maps,
        targets=targets,
        classes=classes,
        probabilities=probs.astype(np.float32),
        method=method,
        options=resolved,
        timings={
            "total": total,
            "per_field": total / N,
            "setup": t_setup,
            "attribution": t_attr,
            "forward_passes": float(fwd_seconds),
        },
        device=str(dev),
        n_forward=int(stats.get("forward_passes", 0)),
    )
