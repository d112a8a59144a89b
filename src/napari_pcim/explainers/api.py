"""``explain()``: attribution maps of raw fields for a classifier, with tiling, devices,
progress and cancel, returned as an :class:`~napari_pcim.explainers.attribution.Attribution`.

This is the one entry point the GUI, the CLI and the batch runner call. It checks
the input before any compute (channels, NaN/inf, empty fields, target class,
option names and ranges, the method's own checks and availability), normalises
the fields with the classifier's metadata, cuts them into classifier-sized tiles
(or resizes them) as the metadata says, builds the baseline images, hands the
tiles to the method's registry entry (:mod:`.registry`) as one lazy batch
(:class:`~napari_pcim.tiling.Tiles`, cut a model batch at a time) against the
field-level targets, checks every model output and map for NaN/inf, and blends the tile maps back onto each field's own pixel
grid (:mod:`napari_pcim.tiling`). It knows no method by name.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import fields as dc_fields
from typing import Any

import numpy as np
import torch

from napari_pcim.baseline_images import make_baseline
from napari_pcim.classifier import Classifier
from napari_pcim.devices import resolve_device
from napari_pcim.explainers.attribution import Attribution
from napari_pcim.explainers.batching import FALLBACK, tuned_batch_size
from napari_pcim.explainers.channels import apportion, channel_ablation, positive_shares
from napari_pcim.explainers.memory import check_fits, estimate_bytes
from napari_pcim.explainers.options import validate_options
from napari_pcim.explainers.recommended import recommended_options
from napari_pcim.explainers.registry import DEFAULT_METHOD, Explainer, Job, get_explainer
from napari_pcim.explainers.runtime import NonFinite
from napari_pcim.tiling import TilePlan

#: Entries of a method's ``stats`` copied into ``Attribution.info`` (RISE's stopping record).
_INFO = ("masks_used", "converged", "noise_ratio")


def _resolve_options(entry: Explainer, options: dict[str, Any]) -> Any:
    """The method's options dataclass from keyword options; ValueError names a bad one."""
    names = [f.name for f in dc_fields(entry.options_cls)]
    unknown = sorted(set(options) - set(names))
    if unknown:
        raise ValueError(f"unknown {entry.name} option(s) {unknown}; valid options: {names}")
    opts = entry.options_cls(**options)
    validate_options(opts, entry.label)
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


def _check_finite(arr: np.ndarray, channel_names: Sequence[str], names: Sequence[str]) -> None:
    """ValueError naming the field and channel that holds NaN/inf or overflows float32."""
    if not np.issubdtype(arr.dtype, np.floating):
        return
    limit = float(np.finfo(np.float32).max)
    for n in range(arr.shape[0]):
        for c in range(arr.shape[1]):
            plane = arr[n, c]
            where = f"{names[n]}, channel {c} ({channel_names[c]!r})"
            bad = ~np.isfinite(plane)
            if bad.any():
                what = "NaN" if np.isnan(plane).any() else "inf"
                raise ValueError(
                    f"{where} contains {what} values ({int(bad.sum())} pixel(s)); "
                    "replace them before explaining"
                )
            if arr.dtype.itemsize > 4 and (peak := float(np.abs(plane).max())) > limit:
                raise ValueError(
                    f"{where} has values up to {peak:.3g}, beyond float32's range "
                    f"(±{limit:.3g}) that the classifier computes in; rescale the field"
                )


def _field_names(names: Sequence[str] | None, n: int) -> list[str]:
    """The fields' names for messages: the caller's ("B03 f0"), else "field 0", "field 1", ..."""
    if names is None:
        return [f"field {i}" for i in range(n)]
    if len(names) != n:
        raise ValueError(f"field_names has {len(names)} name(s) for {n} field(s): {list(names)}")
    return [str(x) for x in names]


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


def _channel_names(classifier: Classifier, n_channels: int,
                   plate_channels: Sequence[str] | None) -> list[str]:
    """The fields' channel names; ValueError unless they give the model its channels."""
    meta = classifier.meta
    if plate_channels is not None:
        if len(plate_channels) != n_channels:
            raise ValueError(
                f"fields have {n_channels} channel(s) but {len(plate_channels)} plate channel names "
                f"were given: {list(plate_channels)}"
            )
        classifier.channel_indices(plate_channels)  # raises if a model channel is missing
        return list(plate_channels)
    if n_channels != len(meta.channels):
        raise ValueError(
            f"fields have {n_channels} channel(s) but the classifier expects {len(meta.channels)}: "
            f"{meta.channels}; pass plate_channels= to map the plate's channels by name"
        )
    return list(meta.channels)


def _targets(mode: str, fixed: int | None, probs: np.ndarray) -> np.ndarray:
    """(N, T) int64 class indices to explain per field."""
    n, k = probs.shape
    if mode == "all":
        return np.tile(np.arange(k), (n, 1)).astype(np.int64)
    if mode == "index":
        return np.full((n, 1), fixed, dtype=np.int64)
    return probs.argmax(axis=1)[:, None].astype(np.int64)


def explain(
    classifier: Classifier,
    fields: Any,
    method: str = DEFAULT_METHOD,
    target: Any = None,
    device: str | torch.device | None = "auto",
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    seed: int = 0,
    plate_channels: Sequence[str] | None = None,
    field_names: Sequence[str] | None = None,
    per_channel: bool = False,
    **options: Any,
) -> Attribution:
    """Explain raw field(s) for ``classifier`` with a registered ``method`` (see ``METHODS``).

    ``fields``: (C, Y, X), (N, C, Y, X) or a list of same-shape raw fields (channels
    in the model's order, or named by ``plate_channels``). ``target``: None or
    "predicted" (each field's predicted class), "all" (every class), a class
    name or index. ``options`` are the method's (see ``METHOD_OPTIONS``).
    ``progress(done, total)`` reports work units; ``should_stop()`` is polled at
    least once per batch/step and raises ``Cancelled``. ``field_names`` name the
    fields in messages ("B03 f0"; default "field 0", ...). Bad input, and a job
    whose memory estimate exceeds the free memory, raise ``ValueError`` before any
    compute. NaN or inf from the model, or in a map, raise ``ValueError`` naming the
    field, the model file and the stage. Tiles go through the model in batches of
    the method's ``batch_size``; when it is None (the default), or the method has
    none, the batch size is tuned for the model, device, threads and tile
    (:func:`~.batching.tuned_batch_size`, cached; a method may tune its own, e.g. for
    forward+backward, and report it as ``stats["batch_size"]``) and recorded in ``info``. ``per_channel=True``
    also fills ``channel_maps``, ``channel_importance`` and ``channel_names``
    (:mod:`.channels`: the method's own decomposition when its registry entry has one,
    else channel ablation).
    """
    t_start = time.perf_counter()
    entry = get_explainer(method)
    # the model's recommended options (its metadata) replace the defaults; the caller's win
    advice = recommended_options(classifier, method)
    opts = _resolve_options(entry, {**advice, **options})
    # recorded: those the run follows, taken or passed back (the Explain form passes them all)
    recommended = {k: v for k, v in advice.items() if getattr(opts, k) == v}
    reason = entry.unavailable(classifier)
    if reason:
        raise ValueError(reason)
    meta = classifier.meta
    classes = tuple(meta.classes)
    arr = _as_batch(fields)
    N, C, Y, X = arr.shape
    names = _field_names(field_names, N)
    _check_finite(arr, _channel_names(classifier, C, plate_channels), names)
    mode, fixed = _resolve_target(target, classes)
    if entry.check is not None:
        entry.check(opts, classifier, (N, Y, X))
    plan = TilePlan.for_classifier(meta, (Y, X))
    explicit = getattr(opts, "batch_size", None)
    batch_size = int(explicit or FALLBACK)  # the memory estimate's batch until tuning picks one
    n_targets = len(classes) if mode == "all" else 1
    n_maps = n_targets * (len(meta.channels) + 1) if per_channel else n_targets

    dev = resolve_device(device)
    check_fits(estimate_bytes(plan, N, len(meta.channels), n_maps, batch_size, entry.needs_baseline),
               dev, batch_size)
    classifier.to(dev)
    module = classifier.module
    was_training = module.training
    grad_flags = [p.requires_grad for p in module.parameters()]
    module.eval()
    for p in module.parameters():  # frozen: only the explainer's own variables learn
        p.requires_grad_(False)
    try:
        x = classifier.prepare(arr, plate_channels)  # (N, C, Y, X) normalised, on dev
        if explicit is None:  # an explicit batch_size wins; else the tuned one (.batching)
            # through the classifier's forward, so a model failing on real data is a ClassifierError
            batch_size = tuned_batch_size(classifier._forward, plan.tiles(x)[:1], model=classifier.sha256)
        with torch.inference_mode():
            logits = torch.cat([classifier.field_logits(x[i : i + 1], batch_size) for i in range(N)])
            classifier.check_logits(logits, names, "probability pass")
            probs = torch.softmax(logits.float(), dim=1).cpu().numpy()
        targets = _targets(mode, fixed, probs)
        baselines = None
        if entry.needs_baseline:
            # Computed on the whole field (a field's median, not a tile's), then tiled.
            baselines = plan.tiles(make_baseline(
                x, opts.baseline, raw_zero=classifier.raw_zero(dev), blur_sigma=opts.blur_sigma
            ))
        job = Job(
            classifier=classifier, forward=module, tiles=plan.tiles(x),
            targets=torch.from_numpy(targets).to(dev).repeat_interleave(plan.n_tiles, dim=0),
            plan=plan, fields=x, baselines=baselines, seed=int(seed), progress=progress,
            should_stop=should_stop,
        )
        t_setup = time.perf_counter() - t_start
        t0 = time.perf_counter()
        channel_maps = importance = None
        try:
            if per_channel and entry.channels is not None:
                tile_channels, opts = entry.channels(job, opts)
                B, T, C_, h, w = tile_channels.shape
                channel_maps = _numpy(plan.assemble(tile_channels.reshape(B, T * C_, h, w)))
                channel_maps = channel_maps.reshape(N, T, C_, Y, X)
                maps = channel_maps.sum(axis=2)
                importance = positive_shares(channel_maps)
            else:
                maps = _numpy(plan.assemble(entry.attribute(job, opts)))
                if per_channel:
                    importance = channel_ablation(job, opts, probs, targets, batch_size, names)
                    channel_maps = apportion(maps, importance)
        except NonFinite as exc:
            raise ValueError(
                f"the classifier {classifier.path} returned {exc.kind} {exc.what} for "
                f"{names[exc.index // plan.n_tiles]} on {exc.on} ({exc.stage})"
            ) from None
        _check_maps(maps if channel_maps is None else channel_maps, names, entry.label, classifier)
        t_attr = time.perf_counter() - t0
    finally:
        for p, flag in zip(module.parameters(), grad_flags):
            p.requires_grad_(flag)
        module.train(was_training)
    total = time.perf_counter() - t_start
    resolved = {f.name: getattr(opts, f.name) for f in dc_fields(opts)}
    resolved["seed"] = int(seed)
    return Attribution(
        maps=maps, targets=targets, classes=classes, probabilities=probs.astype(np.float32),
        method=method, options=resolved,
        timings={
            "total": total,
            "per_field": total / N,
            "setup": t_setup,
            "attribution": t_attr,
            "forward_passes": float(job.stats.get("forward_seconds", 0.0)),
        },
        device=str(dev), n_forward=int(job.stats.get("forward_passes", 0)),
        channel_maps=channel_maps, channel_importance=importance,
        channel_names=tuple(meta.channels) if per_channel else None,
        info={"batch_size": int(job.stats.get("batch_size", batch_size)),
              "batch_size_tuned": explicit is None, "recommended_by_model": recommended,
              **{k: job.stats[k] for k in _INFO if k in job.stats}},
    )


def _numpy(maps: torch.Tensor) -> np.ndarray:
    """Assembled maps as a float32 numpy array."""
    return maps.cpu().numpy().astype(np.float32, copy=False)


def _check_maps(maps: np.ndarray, names: Sequence[str], label: str, classifier: Classifier) -> None:
    """ValueError naming the first field whose map holds NaN or inf."""
    for n, field_maps in enumerate(maps):
        if not np.isfinite(field_maps).all():
            what = "NaN" if np.isnan(field_maps).any() else "infinite"
            raise ValueError(
                f"the {label} map of {names[n]} holds {what} values "
                f"(classifier {classifier.path}); nothing was returned"
            )
