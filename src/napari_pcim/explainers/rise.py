"""RISE: randomised input sampling for explanation (Petsiuk et al. 2018).

N random smooth masks M_i; each masked image ``x ⊙ M_i + (1 − M_i) ⊙ b`` goes
through the classifier; the saliency of class k is the score-weighted mean mask

    S_k = Σ_i score_k(x ⊙ M_i + (1 − M_i) ⊙ b) · M_i / (N · p)

with score = softmax probability. Grid masks (the paper's): a binary s×s grid
with keep-probability p, upsampled bilinearly to (s+1)·cell and cropped with a
random shift. Region masks (:mod:`napari_pcim.explainers.regions`) keep labelled
regions (nuclei, cells, SLIC superpixels) instead of grid cells.

Masks are made on the compute device in fixed chunks of :data:`MASK_CHUNK`
(never N×H×W at once), the random draws come from a seeded CPU
``torch.Generator`` (same seed → same masks on every device), forward passes are
batched under ``torch.inference_mode()`` (optionally autocast on CUDA), and the
sum is a matrix product ``scores(n, K)ᵀ @ masks(n, H·W)``. Images (tiles) are
taken from ``inputs`` and ``baselines`` one forward batch at a time, so they may be
lazy :class:`~napari_pcim.tiling.Tiles`. Peak extra memory depends on the chunk and
batch sizes and the image size, not on N; the saliency sums grow with the images.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol, get_args

import numpy as np
import torch

from napari_pcim.baseline_images import Baseline, baseline_field, blur_sigma_field, make_baseline
from napari_pcim.explainers.batching import FALLBACK, max_batch, tuned_batch_size
from napari_pcim.explainers.grid_masks import GridMasks
from napari_pcim.explainers.options import validate_options
from napari_pcim.explainers.regions import RegionMasks, regions_batch, slic_labels
from napari_pcim.explainers.registry import Explainer, Job, register
from napari_pcim.explainers.runtime import check_finite, check_stop, report, smaller_batch

log = logging.getLogger(__name__)

Forward = Callable[[torch.Tensor], torch.Tensor]

#: masks generated per chunk; fixed so the random stream (and the result) does
#: not depend on the forward batch size or on out-of-memory retries.
MASK_CHUNK = 64
#: masks per convergence round: the map is checked every ROUND masks (a multiple of MASK_CHUNK).
ROUND = 256

Segmentation = Literal["grid", "labels", "slic"]
SEGMENTATIONS: tuple[str, ...] = get_args(Segmentation)
#: Largest mask grid: finer grids leave cells of a pixel or two, which is occlusion, not RISE.
MAX_GRID = 128


@dataclass
class RISEOptions:
    """RISE's tunable options (see :mod:`napari_pcim.explainers.options` for the metadata keys)."""

    n_masks: int = field(default=2500, metadata={
        "help": "most random masks N (fewer when the map converges first, see tolerance)", "min": 1,
        "main": True})
    tolerance: float = field(default=0.2, metadata={
        "help": "stop once the map's estimated noise is below this fraction of its variance "
                "(checked every 256 masks); 0: always draw n_masks", "min": 0, "max": 1,
        "max_open": True})
    grid: int = field(default=16, metadata={
        "help": "s: mask grid cells per side (segmentation=grid); at most the tile side",
        "min": 1, "max": MAX_GRID, "main": True})
    p: float = field(default=0.1, metadata={
        "help": "probability of keeping a grid cell / region", "min": 0, "min_open": True,
        "max": 1, "max_open": True, "main": True})
    baseline: Baseline = baseline_field("what masked pixels become")
    blur_sigma: float | None = blur_sigma_field()
    batch_size: int | None = field(default=None, metadata={
        "help": "images per forward pass (empty: tuned for this model, device, threads and tile)",
        "min": 1})
    segmentation: Segmentation = field(
        default="grid", metadata={"help": "mask units: grid cells, label regions or SLIC superpixels"}
    )
    regions: Any = field(
        default=None,
        metadata={"help": "label image(s) (Y, X) or (N, Y, X) for segmentation='labels'",
                  "gui": False},
    )
    n_segments: int = field(default=200, metadata={
        "help": "SLIC: approximate number of superpixels", "min": 2})
    region_sigma: float = field(
        default=1.0, metadata={"help": "region masks: Gaussian blur σ (pixels) of the kept regions",
                               "min": 0}
    )
    center: bool = field(
        default=True,
        metadata={"help": "subtract the mean score, so a map is 0 where masking changes nothing"},
    )
    mixed_precision: bool = field(
        default=True, metadata={"help": "CUDA only: autocast forward passes to bf16/fp16 when safe"}
    )

    def check(self) -> None:
        """Cross-field check: label masks need the label image."""
        if self.segmentation == "labels" and self.regions is None:
            raise ValueError("RISE segmentation='labels' needs regions= (a label image per field)")


class MaskSource(Protocol):
    """Draws the next ``n`` masks: (n, 1 or B, H, W) float in [0, 1] on the device."""

    def __call__(self, n: int) -> torch.Tensor: ...


def rise_attribute(
    forward: Forward,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    *,
    options: RISEOptions | None = None,
    masks: MaskSource | None = None,
    seed: int = 0,
    baselines: torch.Tensor | None = None,
    raw_zero: torch.Tensor | None = None,
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    stats: dict[str, Any] | None = None,
    tiles_per_field: int = 1,
    on_round: Callable[[int, torch.Tensor, torch.Tensor], None] | None = None,
) -> torch.Tensor:
    """RISE saliency (B, T, H, W) of ``inputs`` (B, C, H, W) for ``targets`` (B, T) class indices.

    ``options`` (default :class:`RISEOptions`) give N (the cap), the tolerance, p, the
    baseline, the batch size, centring and mixed precision. Each image has its own scores;
    one mask set serves all images (grid masks) or each image gets its own (region masks,
    shape (n, B, H, W)). ``masks`` defaults to :class:`GridMasks` (``options.grid``)
    seeded with ``seed``; region segmentations need ``masks`` (``explain()`` builds
    them). ``baselines`` default to ``make_baseline(inputs, options.baseline)``.
    ``progress(done, total)`` counts masks (of the cap ``n_masks``; a converged run
    ends with ``done == total`` = the masks used); ``should_stop()`` is polled before
    every forward batch and raises ``Cancelled``. With ``options.mixed_precision`` on
    CUDA the forward passes are autocast to bf16/fp16 when that leaves the probabilities
    unchanged (:func:`autocast_dtype`). On CUDA out-of-memory the batch is halved and
    retried (logged). ``options.batch_size`` None means :data:`~.batching.FALLBACK` here
    (``explain()`` tunes it per model, see :mod:`.batching`).

    **Stopping when converged.** Every :data:`ROUND` masks (from ``2 · ROUND`` on) the
    noise of the running map is estimated per pixel as the variance of the mean of the
    per-mask terms ``(score − s̄) · (M − M̄) / p`` (centred: the map is the sample covariance
    of score and mask; uncentred ``score · M / p``), and compared with the map's variance across
    the pixels of each field (``tiles_per_field`` consecutive images) and target. RISE
    stops when, for every field and target, noise ÷ variance < ``options.tolerance``
    (0 never stops early). ``on_round(masks, maps, ratios)`` sees the running maps and
    the (fields, T) ratios after each round (the tuning benchmark uses it).

    ``stats`` receives ``forward_passes``, ``forward_seconds``, ``masks_used``,
    ``converged`` (1.0/0.0) and ``noise_ratio`` (the last round's largest ratio).
    ``options.center`` subtracts each image's mean score s̄_k:
    ``S_k = Σ_i (score_k,i − s̄_k) · M_i / (N · p)`` (the paper's map minus
    ``s̄_k · Σ_i M_i / (N · p)``), which removes the per-image offset E[score].
    """
    opts = options or RISEOptions()
    validate_options(opts, "RISE")
    n_masks, p, center, tol = opts.n_masks, opts.p, opts.center, float(opts.tolerance)
    device = inputs.device
    B, C, H, W = inputs.shape
    T = targets.shape[1]
    if B % tiles_per_field:
        raise ValueError(f"RISE: {B} images are not whole fields of {tiles_per_field} tiles")
    if masks is None:
        if opts.segmentation != "grid":
            raise ValueError(f"RISE segmentation={opts.segmentation!r} needs masks= (explain() builds them)")
        masks = GridMasks((H, W), opts.grid, p, torch.Generator().manual_seed(int(seed)), device)
    if baselines is None:
        baselines = make_baseline(inputs, opts.baseline, raw_zero=raw_zero, blur_sigma=opts.blur_sigma)
    tgt = targets.to(device)
    track = tol > 0 or on_round is not None
    acc = _Sums(B, T, H * W, device, track)
    done = 0
    n_forward = 0
    t_fwd = 0.0
    # Bound one forward batch (batching.max_batch: 64 MiB float32, 1 GiB on a GPU) so memory
    # stays flat on large images; the result does not depend on the batch size.
    batch = min(opts.batch_size or FALLBACK, max_batch((C, H, W), gpu=device.type == "cuda"))
    low = autocast_dtype(forward, inputs[:batch]) if device.type == "cuda" and opts.mixed_precision else None

    def scores_of(x: torch.Tensor) -> torch.Tensor:
        nonlocal t_fwd
        t0 = time.perf_counter()
        if low is not None:
            with torch.autocast("cuda", dtype=low):
                logits = forward(x)
        else:
            logits = forward(x)
        check_finite(logits, "logits", "a masked input", "RISE", batch_images)
        probs = torch.softmax(logits.float(), dim=1)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t_fwd += time.perf_counter() - t0
        return probs

    def rectangles(n: int) -> deque[tuple[int, int, int, int]]:
        """Forward batches over a chunk: (mask start, stop, image start, stop), ≤ batch pairs."""
        bb = min(B, batch)
        nm = max(1, batch // bb)
        return deque((i, min(i + nm, n), b, min(b + bb, B))
                     for i in range(0, n, nm) for b in range(0, B, bb))

    cut: tuple[int, int] | None = None
    batch_images = torch.zeros(0, dtype=torch.long)
    converged, ratio = False, float("nan")
    with torch.inference_mode():
        made = 0
        while made < n_masks:
            n = min(MASK_CHUNK, n_masks - made)
            chunk = masks(n)  # (n, 1 or B, H, W)
            shared = chunk.shape[1] == 1
            work = rectangles(n)
            while work:
                check_stop(should_stop, "RISE")
                i0, i1, b0, b1 = work[0]
                m = chunk[i0:i1] if shared else chunk[i0:i1, b0:b1]  # (nm, 1 or nb, H, W)
                nm, nb = i1 - i0, b1 - b0
                batch_images = torch.arange(b0, b1).repeat(nm)
                try:
                    if (b0, b1) != cut:  # the images' tiles, cut once per image batch
                        cut, base = (b0, b1), baselines[b0:b1]
                        delta = inputs[b0:b1] - base
                    x = base[None] + m[:, :, None] * delta[None]
                    probs = scores_of(x.reshape(nm * nb, C, H, W)).view(nm, nb, -1)
                except torch.cuda.OutOfMemoryError:
                    # split the failed batch in two and use half the batch size from now on
                    batch = smaller_batch(nm * nb, "RISE")
                    work.popleft()
                    if nm > 1:
                        half = i0 + nm // 2
                        work.extendleft([(half, i1, b0, b1), (i0, half, b0, b1)])
                    else:
                        half = b0 + nb // 2
                        work.extendleft([(i0, i1, half, b1), (i0, i1, b0, half)])
                    continue
                work.popleft()
                sc = probs.gather(2, tgt[None, b0:b1].expand(nm, nb, T))  # (nm, nb, T)
                acc.add(sc, m.reshape(nm, m.shape[1], H * W), b0, b1, shared)
                n_forward += nm * nb
                done += nm * nb
                report(progress, done // B, n_masks)
            made += n
            if track and made % ROUND == 0 and made >= 2 * ROUND and made < n_masks:
                maps, ratios = acc.check(made, p, center, tiles_per_field)
                ratio = float(ratios.max())
                if on_round is not None:
                    on_round(made, maps.view(B, T, H, W), ratios)
                if tol > 0 and ratio < tol:
                    converged = True
                    report(progress, made, made)
                    break
    if stats is not None:
        stats.update(forward_passes=n_forward, forward_seconds=t_fwd, masks_used=made,
                     converged=float(converged), noise_ratio=ratio)
    return acc.map(made, p, center).view(B, T, H, W)


class _Sums:
    """RISE's running sums; with ``track`` also those of the per-pixel noise estimate."""

    def __init__(self, B: int, T: int, HW: int, device: torch.device, track: bool) -> None:
        self.sal = torch.zeros(B, T, HW, device=device)  # Σ s·M
        self.score = torch.zeros(B, T, device=device)  # Σ s
        self.mask = torch.zeros(B, HW, device=device)  # Σ M
        self.track = track
        if track:
            self.s2m2 = torch.zeros(B, T, HW, device=device)  # Σ s²·M²
            self.sm2 = torch.zeros(B, T, HW, device=device)  # Σ s·M²
            self.s2m = torch.zeros(B, T, HW, device=device)  # Σ s²·M
            self.m2 = torch.zeros(B, HW, device=device)  # Σ M²
            self.s2 = torch.zeros(B, T, device=device)  # Σ s²

    def add(self, sc: torch.Tensor, flat: torch.Tensor, b0: int, b1: int, shared: bool) -> None:
        """Add scores ``sc`` (nm, nb, T) of masks ``flat`` (nm, 1 or nb, H·W) of images b0:b1."""
        nm, nb, T = sc.shape
        HW = flat.shape[2]

        def dot(s: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
            k = s.shape[2]
            if shared:  # one matrix product: (nb·k, nm) @ (nm, H·W)
                return (s.reshape(nm, nb * k).T @ f[:, 0]).view(nb, k, HW)
            return torch.einsum("nbt,nbq->btq", s, f)  # each image its own masks

        self.score[b0:b1] += sc.sum(0)
        self.mask[b0:b1] += flat.sum(0)
        if not self.track:
            self.sal[b0:b1] += dot(sc, flat)
            return
        # s and s² against M and M²: two matrix products, not four (kernel launches count on a GPU)
        both = torch.cat([sc, sc * sc], dim=2)
        sq = flat * flat
        by_m, by_m2 = dot(both, flat), dot(both, sq)
        self.sal[b0:b1] += by_m[:, :T]
        self.s2m[b0:b1] += by_m[:, T:]
        self.sm2[b0:b1] += by_m2[:, :T]
        self.s2m2[b0:b1] += by_m2[:, T:]
        self.m2[b0:b1] += sq.sum(0)
        self.s2[b0:b1] += (sc * sc).sum(0)

    def map(self, n: int, p: float, center: bool) -> torch.Tensor:
        """The RISE map (B, T, H·W) after ``n`` masks."""
        if not center:
            return self.sal / (n * p)
        return (self.sal - (self.score / n)[:, :, None] * self.mask[:, None, :]) / (n * p)

    def check(self, n: int, p: float, center: bool, per_field: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(maps, ratios): the running maps and, per field and target, mean noise ÷ map variance."""
        maps = self.map(n, p, center)
        c = (self.score / n)[:, :, None] if center else torch.zeros_like(self.score)[:, :, None]
        second = (self.s2m2 - 2 * c * self.sm2 + c * c * self.m2[:, None, :]) / n  # E[(s−c)²M²]
        if center:
            # the centred map is the sample covariance of score and mask (Σ(s − s̄) = 0), so its
            # per-mask terms are (s − s̄)(M − M̄)/p, not (s − s̄)·M/p (that overstates the noise)
            mb = (self.mask / n)[:, None, :]
            s2m = (self.s2m - 2 * c * self.sal + c * c * self.mask[:, None, :]) / n  # E[(s−c)²M]
            s2 = (self.s2 / n)[:, :, None] - c * c  # E[(s−c)²]
            second = second - 2 * mb * s2m + mb * mb * s2
        noise = (second / (p * p) - maps * maps).clamp_min(0) / n  # variance of the running mean
        B, T, HW = maps.shape
        by_field = maps.view(B // per_field, per_field, T, HW).transpose(1, 2).reshape(B // per_field, T, -1)
        spread = by_field.var(dim=2)
        noise_f = noise.view(B // per_field, per_field, T, HW).mean(dim=(1, 3))
        ratios = torch.where(spread > 0, noise_f / spread.clamp_min(1e-30), torch.ones_like(spread))
        return maps, ratios


def autocast_dtype(forward: Forward, tiles: torch.Tensor) -> torch.dtype | None:
    """bf16/fp16 when autocast forwards agree with float32 on up to 8 of ``tiles`` (pass
    no more than one forward batch: a model may accept no more); else None."""
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


def _check(opts: RISEOptions, classifier: Any, shape: tuple[int, int, int]) -> None:
    """Refuse a grid finer than the tile and label images not shaped like the fields."""
    side = min(classifier.meta.input_size)
    if opts.segmentation == "grid" and opts.grid > side:
        raise ValueError(
            f"RISE option grid={opts.grid} is larger than the tile side {side}: "
            f"a grid has at most one cell per pixel; choose grid ≤ {side}"
        )
    if opts.segmentation == "labels":
        regions_batch(opts.regions, shape[0], shape[1:])


def _masks(job: Job, opts: RISEOptions) -> MaskSource:
    """Grid masks on the tile, or region masks from the fields' labels / SLIC superpixels."""
    gen = torch.Generator().manual_seed(int(job.seed))
    if opts.segmentation == "grid":
        return GridMasks(job.plan.tile, opts.grid, opts.p, gen, job.tiles.device)
    n, _, y, x = job.fields.shape
    if opts.segmentation == "labels":
        regions = regions_batch(opts.regions, n, (y, x))
    else:
        xs = job.fields.float().cpu().numpy()
        regions = np.stack([slic_labels(xs[i], opts.n_segments) for i in range(n)])
    lab = torch.from_numpy(np.ascontiguousarray(regions, dtype=np.int64)).to(job.tiles.device)
    return RegionMasks(job.plan.split_labels(lab), opts.p, opts.region_sigma, gen)


def _attribute(job: Job, opts: RISEOptions) -> torch.Tensor:
    """The registry's call: RISE on all tiles with masks built for this job (batch tuned if None)."""
    if opts.batch_size is None:
        batch = tuned_batch_size(job.forward, job.tiles[:1], model=getattr(job.classifier, "sha256", None))
        opts = replace(opts, batch_size=batch)
    job.stats["batch_size"] = opts.batch_size
    return rise_attribute(
        job.forward, job.tiles, job.targets, options=opts, masks=_masks(job, opts),
        baselines=job.baselines, progress=job.progress, should_stop=job.should_stop,
        stats=job.stats, tiles_per_field=job.plan.n_tiles,
    )


register(Explainer("rise", "RISE", RISEOptions, _attribute, check=_check))
