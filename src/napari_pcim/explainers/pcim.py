"""PCIM: pixel attributions learnt by pixel-wise channel isolation mixing.

After Siegismund et al. 2024 ("PCIM: Learning Pixel Attributions via Pixel-wise
Channel Isolation Mixing in High Content Imaging"). A normalised image x (C, H, W)
is viewed as H·W isolated *pixel channels* (pixel p with all its fluorescence
channels). A mixing layer recombines them into one image with one learnable
weight per pixel channel, per image and per target class:

    σ = softmax(w / τ)                  over the H·W pixels (pixels compete)
    m = β · H·W · σ                     mixing weights; Σ m = β·H·W, the fixed budget
    x̃ = m ⊙ x + (1 − m) ⊙ b             b: baseline (napari_pcim.baseline_images)

With β = 1 (the default) the budget is the image itself: uniform weights give back x
exactly, so the optimisation starts from the classifier's own view of the field; learning
moves weight from pixels that do not support the target to pixels that do (a pixel may be
amplified past its own value).
``mixing="saturating"`` uses ``m = 1 − exp(−β·H·W·σ)`` instead (a keep-mask in [0, 1)).

The classifier is frozen; only ``w`` learns. The loss is the target's negative log-odds
margin ``−(z_t − logsumexp(z_others))`` (``loss="margin"``, default), which keeps a
gradient of size ~1 however confident the classifier is; ``loss="log-prob"`` is the
original ``−log p(target)``, whose gradient vanishes as p → 1 (at margins of 30–60 it is
1e-13 to 1e-26). The update (``update="normalised"``, default) is normalised gradient
descent, ``w −= lr · g / max|g|`` per (field, target): it keeps the gradient's *shape*
across pixels, so the first step is the centred Input×Gradient of the margin.
``update="adam"`` (the original) normalises every pixel's step by its own gradient
history: its first step is ≈ −lr·sign(g), which throws the gradient's size away, and
gradients below Adam's ε (1e-8) move nothing — the real cause of the flat maps the
log-prob loss gave on saturated classifiers. ``+ λ_TV · TV(m)`` smooths the mask.

The map (``readout="mass-change"``) is ``H·W·σ − 1``, each pixel's change of mixing
weight from the image: no pixel is positive by construction (the original
``"mass-above-median"`` made half of them so; ``"mass"`` and ``"mask"`` remain).
Against a deep network's noisy pixel gradients, ``starts`` random starts (log-normal
contrast, ``start_noise``, varying smoothly over ``start_scale`` px) are averaged
(:func:`_random_starts`) and ``smooth`` blurs the map (σ px);
``starts=1, start_noise=0, smooth=0`` is the first-order map. Defaults
and the bundled models' recommendations were chosen on tuning fields
(``napari-pcim bench tune pcim --grid``, docs/methods.md).
``isolation="pixel-channel"`` gives every (pixel, channel) its own weight under the
same softmax budget; the pixel map is then the sum of the channel maps, which
``explain(..., per_channel=True)`` returns. Only autograd on the input is needed:
no hooks, no internal states, so any TorchScript classifier works. See docs/methods.md for the derivation and defaults.

:func:`pcim_attribute` follows captum's vocabulary: a forward function, inputs,
targets. :func:`napari_pcim.explainers.explain` wraps it with classifiers, tiling,
devices, progress and cancel.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import torch

from napari_pcim.baseline_images import gaussian_blur, make_baseline
from napari_pcim.explainers.batching import FALLBACK, tuned_batch_size
from napari_pcim.explainers.options import validate_options
from napari_pcim.explainers.pcim_options import (  # noqa: F401 - re-exported
    ISOLATIONS,
    LOSSES,
    MIXINGS,
    READOUTS,
    UPDATES,
    PCIMOptions,
)
from napari_pcim.explainers.pcim_starts import start_logits
from napari_pcim.explainers.registry import Explainer, Job, register
from napari_pcim.explainers.runtime import check_finite, check_stop, report, smaller_batch

Forward = Callable[[torch.Tensor], torch.Tensor]


def _mixing_weights(sigma: torch.Tensor, scale: float, mixing: str) -> torch.Tensor:
    """Mixing weights m from the softmax mass σ: linear, or saturating in [0, 1)."""
    return scale * sigma if mixing == "linear" else -torch.expm1(-scale * sigma)


def _tv(m: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference between neighbouring mask pixels, per image: (n,)."""
    dy = (m[..., 1:, :] - m[..., :-1, :]).abs().flatten(1).mean(1)
    dx = (m[..., :, 1:] - m[..., :, :-1]).abs().flatten(1).mean(1)
    return dy + dx


def check_differentiable(forward: Forward, example: torch.Tensor) -> None:
    """Raise ValueError unless the logits of ``forward`` have a gradient w.r.t. the input."""
    x = example[:1].detach().clone().requires_grad_(True)
    message = (
        "PCIM needs gradients through the model: its logits must be differentiable with "
        "respect to the input image (no torch.no_grad/inference_mode, .detach() or "
        "non-differentiable ops such as argmax inside forward). Use method='rise' instead"
    )
    try:
        with torch.enable_grad():
            out = forward(x)
            if not isinstance(out, torch.Tensor) or out.grad_fn is None:
                raise ValueError(message)
            (grad,) = torch.autograd.grad(out.float().sum(), x, allow_unused=True)
    except RuntimeError as exc:
        raise ValueError(f"{message} ({exc})") from exc
    if grad is None:
        raise ValueError(message)


class _Item:
    """The tiles of one optimisation batch: n items of ``group`` tiles, images ``idx``
    of ``tiles``/``bases`` (tensors or lazy :class:`~napari_pcim.tiling.Tiles`), with
    ``k`` mixing weights per pixel (1, or one per channel)."""

    def __init__(self, tiles: Any, bases: Any, idx: torch.Tensor, group: int, chunk: int,
                 k: int = 1) -> None:
        self.tiles, self.bases, self.idx, self.group, self.chunk = tiles, bases, idx, group, chunk
        self.k = k
        self.passes = 1  # model passes per tile in the last step (see _gradient)
        self.whole = idx.numel() <= chunk
        if self.whole:  # small enough: hold x and x − b for all the batch's tiles
            self.b = bases[idx]
            self.delta = tiles[idx] - self.b

    def parts(self) -> Any:
        """(tile slice, baseline, x − b) per chunk: as few chunks of at most ``chunk`` tiles
        as will do, of equal size ±1 (25 tiles in chunks of 8 go as 6, 6, 6, 7, not 8, 8, 8, 1)."""
        if self.whole:
            yield slice(None), self.b, self.delta
            return
        total = self.idx.numel()
        n = -(-total // self.chunk)
        for i in range(n):
            s, e = i * total // n, (i + 1) * total // n
            sub = self.idx[s:e]
            b = self.bases[sub]
            yield slice(s, e), b, self.tiles[sub] - b


def _mixed_logits(forward: Forward, item: _Item, m: torch.Tensor, n: int) -> torch.Tensor:
    """Item logits (n, K) of the mixed tiles: the mean of each item's tile logits."""
    H, W = item.tiles.shape[-2:]
    flat = m.reshape(-1, item.k, H, W)
    outs = [forward(b + flat[sl] * d).float() for sl, b, d in item.parts()]
    logits = torch.cat(outs).view(n, item.group, -1).mean(dim=1)
    check_finite(logits, "logits", "a mixed input", "PCIM", item.idx[:: item.group])
    return logits


def _loss(logits: torch.Tensor, m: torch.Tensor, target: torch.Tensor, n: int, group: int,
          opts: PCIMOptions) -> torch.Tensor:
    """Per-item loss (n,) of the mean logits, plus λ_TV · the tiles' mean TV.

    ``loss="margin"``: −(z_t − logsumexp(z_others)), the target's negative log-odds;
    ``"log-prob"``: −log p(target). ``m``: the tiles' mixing weights (n · group, k, H, W)."""
    if opts.loss == "margin":
        z_t = logits.gather(1, target[:, None])[:, 0]
        others = logits.scatter(1, target[:, None], float("-inf"))
        loss = torch.logsumexp(others, dim=1) - z_t
    else:
        loss = -torch.log_softmax(logits, dim=1).gather(1, target[:, None])[:, 0]
    if opts.tv > 0:
        loss = loss + opts.tv * _tv(m).view(n, group).mean(dim=1)
    return loss


def _gradient(forward: Forward, item: _Item, w: torch.Tensor, target: torch.Tensor,
              scale: float, opts: PCIMOptions) -> float:
    """Set ``w.grad`` to d(total loss)/dw; returns the total loss.

    A batch larger than a chunk (one field's tiles) is done in tile chunks with the
    same objective: the loss gradient G w.r.t. the mean logits, then per chunk the
    gradient of ``Σ_t G · logits_t / g`` (plus the TV term) w.r.t. the chunk's mixing
    weights, and finally the softmax Jacobian over all pixels. For the two-class margin
    loss (z_other − z_t, linear in the logits) G is ±1 without looking at the logits, so
    each tile goes through the model once per step; otherwise a no-grad pass over all
    tiles gives the mean logits first (two passes per tile). ``item.passes`` records which.
    """
    n, g = target.shape[0], item.group
    H, W = item.tiles.shape[-2:]
    sigma = torch.softmax(w / opts.temperature, dim=1)
    m = _mixing_weights(sigma, scale, opts.mixing)
    if item.whole:
        total = _loss(_mixed_logits(forward, item, m, n), m.view(-1, item.k, H, W), target, n, g,
                      opts).sum()
        (w.grad,) = torch.autograd.grad(total, [w])
        item.passes = 1
        return float(total.detach())
    md = m.detach().view(-1, item.k, H, W)
    G: torch.Tensor | None = None
    grad_m = torch.empty_like(md)
    outs: list[torch.Tensor] = []
    for sl, b, d in item.parts():
        mc = md[sl].clone().requires_grad_(True)
        logits = forward(b + mc * d).float()
        if G is None:
            if opts.loss == "margin" and logits.shape[1] == 2:
                G = torch.ones(n, 2, device=w.device).scatter_(1, target[:, None], -1.0)
            else:
                return _gradient_two_pass(forward, item, w, m, md, target, opts)
        outs.append(logits.detach())
        part = (logits * G).sum() / g
        if opts.tv > 0:
            part = part + opts.tv * _tv(mc).sum() / g
        (grad_m[sl],) = torch.autograd.grad(part, [mc])
    mean = torch.cat(outs).view(n, g, -1).mean(dim=1)
    check_finite(mean, "logits", "a mixed input", "PCIM", item.idx[::g])
    (w.grad,) = torch.autograd.grad(_dot(m, grad_m), [w])
    item.passes = 1
    return float(_loss(mean, md, target, n, g, opts).sum())


def _gradient_two_pass(forward: Forward, item: _Item, w: torch.Tensor, m: torch.Tensor,
                       md: torch.Tensor, target: torch.Tensor, opts: PCIMOptions) -> float:
    """:func:`_gradient` for chunked batches whose G needs the mean logits first."""
    n, g = target.shape[0], item.group
    with torch.no_grad():
        mean = _mixed_logits(forward, item, m, n)
    mean.requires_grad_(True)
    total = _loss(mean, md, target, n, g, opts).sum()
    (G,) = torch.autograd.grad(total, [mean])
    grad_m = torch.empty_like(md)
    for sl, b, d in item.parts():
        mc = md[sl].clone().requires_grad_(True)
        part = (forward(b + mc * d).float() * G).sum() / g
        if opts.tv > 0:
            part = part + opts.tv * _tv(mc).sum() / g
        (grad_m[sl],) = torch.autograd.grad(part, [mc])
    (w.grad,) = torch.autograd.grad(_dot(m, grad_m), [w])
    item.passes = 2
    return float(total.detach())


def _dot(m: torch.Tensor, grad_m: torch.Tensor) -> torch.Tensor:
    """Σ m · grad_m, a scalar whose gradient w.r.t. w is ``grad_m`` through the softmax.

    The same gradient as ``autograd.grad(m, w, grad_outputs=grad_m)``, which on first use
    imports torch's symbolic-shapes module and sympy (1–3 s once per process)."""
    return (m * grad_m.view_as(m)).sum()


def _normalised_step(w: torch.Tensor, lr: float) -> None:
    """Normalised gradient descent in place: ``w −= lr · g / max|g|`` per item (row).

    Unlike Adam, the step keeps the relative size of the gradient across pixels, and it
    does not depend on the gradient's absolute scale (no ε floor): a row whose gradient is
    exactly zero does not move."""
    with torch.no_grad():
        g = w.grad
        top = g.abs().amax(dim=1, keepdim=True)
        w -= lr * g / torch.where(top > 0, top, torch.ones_like(top))


def _optimise(
    forward: Forward,
    item: _Item,
    target: torch.Tensor,
    opts: PCIMOptions,
    tick: Callable[[int], None],
    w0: torch.Tensor | None = None,
) -> tuple[torch.Tensor, int]:
    """Learn mixing weights for n items of ``item.group`` tiles each at once.

    ``target``: (n,). An item's logits are the mean of its tiles' logits and its
    softmax runs over all its tiles' pixels (pixel channels with ``item.k`` = C).
    ``w0`` (n, P): the starting mixing logits (None: zeros, the image itself); the
    "mass-change" read-out is measured from it. Returns (maps (n * group, k, H, W), steps run).
    """
    n = target.shape[0]
    H, W = item.tiles.shape[-2:]
    P = item.group * item.k * H * W  # mixing units per item
    scale = opts.budget * P
    start = torch.zeros(n, P, device=item.tiles.device) if w0 is None else w0
    w = start.clone().requires_grad_(True)
    opt = torch.optim.Adam([w], lr=opts.lr) if opts.update == "adam" else None
    history: list[float] = []
    for step in range(opts.steps):
        tick(step)
        # Gradients w.r.t. the mixing weights only: the classifier's parameters get none.
        history.append(_gradient(forward, item, w, target, scale, opts) / n)
        if opt is not None:
            opt.step()
        else:
            _normalised_step(w, opts.lr)
        if len(history) > opts.patience:
            before = history[-1 - opts.patience]
            if before - history[-1] < opts.tol * max(abs(before), 1e-6):
                break
    with torch.no_grad():
        sigma = torch.softmax(w / opts.temperature, dim=1)
        if opts.readout == "mask":
            out = _mixing_weights(sigma, scale, opts.mixing)
        else:
            out = sigma * P
            if opts.readout == "mass-above-median":
                out = out - out.median(dim=1, keepdim=True).values
            elif opts.readout == "mass-change":
                out = out - torch.softmax(start / opts.temperature, dim=1) * P
        out = gaussian_blur(out.view(n * item.group, item.k, H, W), opts.smooth)
    return out.detach(), len(history)


def _random_starts(forward: Forward, item: _Item, target: torch.Tensor, opts: PCIMOptions,
                   tick: Callable[[int], None], seeds: list[int]) -> tuple[torch.Tensor, int]:
    """The mean map of ``opts.starts`` optimisations from random mixing logits
    (:func:`~.pcim_starts.start_logits`: N(0, start_noise²), correlated over
    ``start_scale`` pixels), and the steps run (one start from zeros when ``start_noise`` is 0).

    A random start re-mixes the pixels with log-normal contrast, so the average is over
    the gradient at nearby mixtures, not at the image alone: a deep network's pixel
    gradients are noisy there, their average is not (SmoothGrad's argument, Smilkov et al.
    2017, made in PCIM's own mixing space). Item i's draws are seeded with ``seeds[i]``
    (from the seed and the target)."""
    shape = (item.group, item.k, *item.tiles.shape[-2:])
    starts = opts.starts_run()
    total, steps = None, 0
    for s in range(starts):
        w0 = None
        if opts.start_noise > 0:
            w0 = start_logits(seeds, s, opts.start_noise, opts.start_scale, shape,
                              item.tiles.device)
        maps, run = _optimise(forward, item, target, opts,
                              lambda step, s=s: tick(s * opts.steps + step), w0)
        total = maps if total is None else total + maps
        steps += run
    return total / starts, steps


def pcim_attribute(
    forward: Forward,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    *,
    options: PCIMOptions | None = None,
    baselines: torch.Tensor | None = None,
    raw_zero: torch.Tensor | None = None,
    tiles_per_item: int = 1,
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    stats: dict[str, float] | None = None,
    per_channel: bool = False,
    seed: int = 0,
) -> torch.Tensor:
    """PCIM maps (B, T, H, W) for ``inputs`` (B, C, H, W) and ``targets`` (B, T) class indices.

    ``options.isolation="pixel-channel"`` learns one weight per pixel and channel
    (one softmax budget over all of them); the pixel map is then the sum of the
    channel maps, which ``per_channel=True`` returns instead, as (B, T, C, H, W).

    Every (image, target) pair gets its own mixing weights; pairs are optimised
    together in batches of about ``options.batch_size`` images (None: :data:`~.batching.FALLBACK`;
    ``explain()`` tunes it for a forward+backward pass). With
    ``tiles_per_item = g > 1`` each run of g consecutive images is the tiles of
    one field: they share one softmax (pixels of all tiles compete for one
    budget) and one loss on the mean of their logits (the classifier's
    field-level logits), so tile maps are comparable across tiles. ``baselines`` (B, C, H, W)
    defaults to ``make_baseline(inputs, options.baseline)``. ``progress(done,
    total)`` counts optimisation steps (a batch that stops early jumps to its
    share); ``should_stop()`` is polled every step and raises ``Cancelled``.
    ``stats`` (optional) receives ``forward_passes`` (images through the model) and
    ``forward_seconds`` (time in the optimisation, forward and backward passes).
    ``options.starts`` > 1 averages the maps of that many random starts (:func:`_random_starts`),
    drawn from ``seed``. On CUDA out-of-memory the batch (or a field's tile chunk) is
    halved and retried (logged).
    """
    opts = options or PCIMOptions()
    validate_options(opts, "PCIM")
    if per_channel and opts.isolation != "pixel-channel":
        raise ValueError("PCIM per-channel maps need isolation='pixel-channel'")
    k = inputs.shape[1] if opts.isolation == "pixel-channel" else 1
    B, T = targets.shape
    g = tiles_per_item
    if B % g:
        raise ValueError(f"{B} images do not split into items of {g} tiles")
    if baselines is None:
        baselines = make_baseline(inputs, opts.baseline, raw_zero=raw_zero, blur_sigma=opts.blur_sigma)
    # Items are (field, target) pairs, target-minor; item i covers tiles img[i*g:(i+1)*g].
    n_items = (B // g) * T
    field_of = torch.arange(B // g, device=inputs.device).repeat_interleave(T)
    tgt = targets.to(inputs.device)[::g].reshape(-1)
    tile = torch.arange(g, device=inputs.device)
    out = torch.empty(B, T, k, *inputs.shape[-2:], device=inputs.device)
    chunk = opts.batch_size or FALLBACK  # tiles per model call
    batch = max(1, chunk // g)  # items per optimisation batch
    per_batch = opts.steps * opts.starts_run()
    total = -(-n_items // batch) * per_batch
    done = 0
    n_forward = 0
    t_opt = 0.0
    start = 0
    while start < n_items:
        stop = min(start + batch, n_items)
        base = done

        def tick(step: int, base: int = base) -> None:
            check_stop(should_stop, "PCIM")
            if step > 0:
                report(progress, base + step, total)

        idx = (field_of[start:stop, None] * g + tile).reshape(-1)  # the items' tiles
        t0 = time.perf_counter()
        try:
            item = _Item(inputs, baselines, idx, g, chunk, k)
            seeds = [seed * 1_000_003 + t for t in tgt[start:stop].tolist()]  # per (seed, target)
            maps, steps = _random_starts(forward, item, tgt[start:stop], opts, tick, seeds)
        except torch.cuda.OutOfMemoryError:
            if batch > 1:
                batch = smaller_batch(batch, "PCIM")
            else:
                chunk = smaller_batch(min(chunk, g), "PCIM")
            total = done + -(-(n_items - start) // batch) * per_batch
            continue
        t_opt += time.perf_counter() - t0
        t_of = torch.arange(start, stop, device=inputs.device) % T
        out[idx, t_of.repeat_interleave(g)] = maps
        n_forward += steps * (stop - start) * g * item.passes
        done = base + per_batch
        report(progress, done, total)
        start = stop
    if stats is not None:
        stats["forward_passes"] = n_forward
        stats["forward_seconds"] = t_opt
    return out if per_channel else out.sum(dim=2)


def _attribute(job: Job, options: PCIMOptions, per_channel: bool = False) -> torch.Tensor:
    """The registry's call: PCIM on all tiles, each field's tiles sharing one budget.

    A None ``batch_size`` is tuned for a forward+backward pass of this model on one tile
    (:func:`~.batching.tuned_batch_size`, cached) and recorded in ``job.stats``."""
    check_differentiable(job.forward, job.tiles)
    if options.batch_size is None:
        batch = tuned_batch_size(job.forward, job.tiles[:1], model=getattr(job.classifier, "sha256", None),
                                 grad=True)
        options = replace(options, batch_size=batch)
    job.stats["batch_size"] = options.batch_size
    return pcim_attribute(
        job.forward, job.tiles, job.targets, options=options, baselines=job.baselines,
        tiles_per_item=job.plan.n_tiles, progress=job.progress, should_stop=job.should_stop,
        stats=job.stats, per_channel=per_channel, seed=job.seed,
    )


def _channels(job: Job, options: PCIMOptions) -> tuple[torch.Tensor, PCIMOptions]:
    """Per-channel maps (B, T, C, h, w): the ``isolation="pixel-channel"`` variant."""
    opts = replace(options, isolation="pixel-channel")
    return _attribute(job, opts, per_channel=True), opts


register(Explainer("pcim", "PCIM", PCIMOptions, _attribute, channels=_channels))
