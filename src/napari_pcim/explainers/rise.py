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
sum is a matrix product ``scores(n, K)ᵀ @ masks(n, H·W)``. Peak extra memory
depends on the chunk and batch sizes and the image size, not on N.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
import torch.nn.functional as F

from napari_pcim.baseline_images import BASELINES, make_baseline

log = logging.getLogger(__name__)

Forward = Callable[[torch.Tensor], torch.Tensor]

#: masks generated per chunk; fixed so the random stream (and the result) does
#: not depend on the forward batch size or on out-of-memory retries.
MASK_CHUNK = 64

SEGMENTATIONS = ("grid", "labels", "slic")


@dataclass
class RISEOptions:
    """RISE's tunable options; ``metadata["help"]`` is the one-line help the GUI shows."""

    n_masks: int = field(default=4000, metadata={"help": "number of random masks N"})
    grid: int = field(default=8, metadata={"help": "s: mask grid cells per side (segmentation=grid)"})
    p: float = field(default=0.5, metadata={"help": "probability of keeping a grid cell / region"})
    baseline: str = field(
        default="median", metadata={"help": f"what masked pixels become: {', '.join(BASELINES)}"}
    )
    blur_sigma: float | None = field(
        default=None, metadata={"help": "blur baseline σ in pixels (default: 1/8 of the side)"}
    )
    batch_size: int = field(default=64, metadata={"help": "images per forward pass"})
    segmentation: str = field(
        default="grid", metadata={"help": "mask units: grid cells, label regions or SLIC superpixels"}
    )
    regions: Any = field(
        default=None,
        metadata={"help": "label image(s) (Y, X) or (N, Y, X) for segmentation='labels'"},
    )
    n_segments: int = field(default=200, metadata={"help": "SLIC: approximate number of superpixels"})
    region_sigma: float = field(
        default=1.0, metadata={"help": "region masks: Gaussian blur σ (pixels) of the kept regions"}
    )
    center: bool = field(
        default=True,
        metadata={"help": "subtract the mean score, so a map is 0 where masking changes nothing"},
    )
    mixed_precision: bool = field(
        default=True, metadata={"help": "CUDA only: autocast forward passes to bf16/fp16 when safe"}
    )

    def validate(self) -> None:
        """Raise ValueError naming the first out-of-range option."""
        checks = [
            ("n_masks", self.n_masks >= 1, "≥ 1"),
            ("grid", self.grid >= 1, "≥ 1"),
            ("p", 0 < self.p < 1, "in (0, 1)"),
            ("baseline", self.baseline in BASELINES, f"one of {BASELINES}"),
            ("batch_size", self.batch_size >= 1, "≥ 1"),
            ("segmentation", self.segmentation in SEGMENTATIONS, f"one of {SEGMENTATIONS}"),
            ("n_segments", self.n_segments >= 2, "≥ 2"),
            ("region_sigma", self.region_sigma >= 0, "≥ 0"),
        ]
        for name, ok, expected in checks:
            if not ok:
                raise ValueError(f"RISE option {name}={getattr(self, name)!r} must be {expected}")
        if self.segmentation == "labels" and self.regions is None:
            raise ValueError("RISE segmentation='labels' needs regions= (a label image per field)")


class MaskSource(Protocol):
    """Draws the next ``n`` masks: (n, 1 or B, H, W) float in [0, 1] on the device."""

    def __call__(self, n: int) -> torch.Tensor: ...


class GridMasks:
    """The paper's masks: bilinearly upsampled random binary s×s grids with random shifts."""

    def __init__(self, size: tuple[int, int], grid: int, p: float, generator: torch.Generator,
                 device: torch.device) -> None:
        self.H, self.W = size
        self.grid, self.p, self.gen, self.device = grid, p, generator, device
        self.cell = (-(-self.H // grid), -(-self.W // grid))  # ceil(H / s), ceil(W / s)

    def __call__(self, n: int) -> torch.Tensor:
        s, (ch, cw) = self.grid, self.cell
        cells = (torch.rand(n, 1, s, s, generator=self.gen) < self.p).float()
        dy = torch.randint(0, ch, (n,), generator=self.gen)
        dx = torch.randint(0, cw, (n,), generator=self.gen)
        up = F.interpolate(cells.to(self.device), size=((s + 1) * ch, (s + 1) * cw),
                           mode="bilinear", align_corners=False)
        # per-mask crops (views, copied once by stack): no (n, H, W) index tensors
        crops = [up[i, :, y : y + self.H, x : x + self.W] for i, (y, x) in
                 enumerate(zip(dy.tolist(), dx.tolist()))]
        return torch.stack(crops)


def rise_attribute(
    forward: Forward,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    *,
    n_masks: int = 4000,
    p: float = 0.5,
    masks: MaskSource | None = None,
    grid: int = 8,
    seed: int = 0,
    baselines: torch.Tensor | None = None,
    baseline: str = "median",
    raw_zero: torch.Tensor | None = None,
    blur_sigma: float | None = None,
    batch_size: int = 64,
    center: bool = False,
    autocast_dtype: torch.dtype | None = None,
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    stats: dict[str, float] | None = None,
) -> torch.Tensor:
    """RISE saliency (B, T, H, W) of ``inputs`` (B, C, H, W) for ``targets`` (B, T) class indices.

    Each image has its own scores; one mask set serves all images (grid masks) or
    each image gets its own (region masks, shape (n, B, H, W)). ``masks``
    defaults to :class:`GridMasks` seeded with ``seed``. ``progress(done, total)``
    counts images through the model; ``should_stop()`` is polled before every
    forward batch and raises ``Cancelled``. ``autocast_dtype`` (CUDA only) runs
    the forward passes in that precision. On CUDA out-of-memory the batch is
    halved and retried (logged). ``stats`` receives ``forward_passes`` and
    ``forward_seconds``. ``center=True`` subtracts each image's mean score s̄_k:
    ``S_k = Σ_i (score_k,i − s̄_k) · M_i / (N · p)`` (the paper's map minus
    ``s̄_k · Σ_i M_i / (N · p)``), which removes the per-image offset E[score].
    """
    device = inputs.device
    B, C, H, W = inputs.shape
    T = targets.shape[1]
    if masks is None:
        gen = torch.Generator().manual_seed(int(seed))
        masks = GridMasks((H, W), grid, p, gen, device)
    if baselines is None:
        baselines = make_baseline(inputs, baseline, raw_zero=raw_zero, blur_sigma=blur_sigma)
    delta = inputs - baselines
    tgt = targets.to(device)
    sal = torch.zeros(B, T, H * W, device=device)
    score_sum = torch.zeros(B, T, device=device)
    mask_sum = torch.zeros(B, H * W, device=device)
    total = n_masks * B
    done = 0
    n_forward = 0
    t_fwd = 0.0
    # Bound one forward batch to ~2^24 input values (64 MiB float32) so memory stays
    # flat on large images; the result does not depend on the batch size.
    batch = max(1, min(batch_size, 2**24 // (C * H * W)))

    def scores_of(x: torch.Tensor) -> torch.Tensor:
        nonlocal t_fwd
        t0 = time.perf_counter()
        if autocast_dtype is not None and device.type == "cuda":
            with torch.autocast("cuda", dtype=autocast_dtype):
                logits = forward(x)
        else:
            logits = forward(x)
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

    with torch.inference_mode():
        made = 0
        while made < n_masks:
            n = min(MASK_CHUNK, n_masks - made)
            chunk = masks(n)  # (n, 1 or B, H, W)
            shared = chunk.shape[1] == 1
            work = rectangles(n)
            while work:
                if should_stop is not None and should_stop():
                    from napari_pcim.explainers.api import Cancelled

                    raise Cancelled("RISE cancelled")
                i0, i1, b0, b1 = work[0]
                m = chunk[i0:i1] if shared else chunk[i0:i1, b0:b1]  # (nm, 1 or nb, H, W)
                nm, nb = i1 - i0, b1 - b0
                try:
                    x = baselines[None, b0:b1] + m[:, :, None] * delta[None, b0:b1]
                    probs = scores_of(x.reshape(nm * nb, C, H, W)).view(nm, nb, -1)
                except torch.cuda.OutOfMemoryError:
                    if nm * nb == 1:
                        raise
                    # split the failed batch in two and use half the batch size from now on
                    batch = max(1, (nm * nb) // 2)
                    work.popleft()
                    if nm > 1:
                        half = i0 + nm // 2
                        work.extendleft([(half, i1, b0, b1), (i0, half, b0, b1)])
                    else:
                        half = b0 + nb // 2
                        work.extendleft([(i0, i1, half, b1), (i0, i1, b0, half)])
                    log.warning("RISE: CUDA out of memory; halving the batch to %d and retrying", batch)
                    torch.cuda.empty_cache()
                    continue
                work.popleft()
                sc = probs.gather(2, tgt[None, b0:b1].expand(nm, nb, T))  # (nm, nb, T)
                flat = m.reshape(nm, m.shape[1], H * W)
                if shared:  # one matrix product: (nb·T, nm) @ (nm, H·W)
                    sal[b0:b1] += (sc.reshape(nm, nb * T).T @ flat[:, 0]).view(nb, T, H * W)
                else:  # each image its own masks: batched over images
                    sal[b0:b1] += torch.einsum("nbt,nbq->btq", sc, flat)
                if center:
                    score_sum[b0:b1] += sc.sum(0)
                    mask_sum[b0:b1] += flat.sum(0)
                n_forward += nm * nb
                done += nm * nb
                if progress is not None:
                    progress(done, total)
            made += n
    if stats is not None:
        stats["forward_passes"] = n_forward
        stats["forward_seconds"] = t_fwd
    if center:
        sal -= (score_sum / n_masks)[:, :, None] * mask_sum[:, None, :]
    return (sal / (n_masks * p)).view(B, T, H, W)
