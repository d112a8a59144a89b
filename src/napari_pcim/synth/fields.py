"""Simulate one field (:func:`generate_field`) or a training batch (:func:`generate_batch`)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from napari_pcim.synth.cells import cells_field
from napari_pcim.synth.imaging import DEFAULT_CONDITION, ImagingCondition
from napari_pcim.synth.worms import worms_field
from napari_pcim.vocabulary import DEMO_CHANNELS, DEMO_CLASSES, PHENOTYPES


@dataclass
class SyntheticField:
    """One simulated field: ``image`` (4, H, W) uint16, ``labels`` {name: (H, W)}."""

    image: np.ndarray
    labels: dict[str, np.ndarray]
    treated: bool
    phenotype: str = "foci"
    channel_names: tuple[str, ...] = DEMO_CHANNELS


@dataclass
class SyntheticBatch:
    """A batch for training: ``images`` (n,4,H,W) uint16, ``labels`` (n,) int64, ``gt`` (n,H,W)."""

    images: np.ndarray
    labels: np.ndarray
    gt: np.ndarray
    phenotype: str = "foci"
    channel_names: tuple[str, ...] = DEMO_CHANNELS
    classes: tuple[str, str] = field(default=DEMO_CLASSES)



def check_phenotype(phenotype: str) -> None:
    """ValueError naming the choices unless ``phenotype`` is one of :data:`PHENOTYPES`."""
    if phenotype not in PHENOTYPES:
        raise ValueError(
            f"unknown phenotype {phenotype!r}; expected one of {', '.join(PHENOTYPES)}"
        )


def generate_field(
    phenotype: str,
    treated: bool,
    *,
    size: int = 256,
    seed: int | None = None,
    rng: np.random.Generator | None = None,
    condition: ImagingCondition | None = None,
    edge: bool = False,
) -> SyntheticField:
    """Simulate one (4, size, size) uint16 field of ``phenotype`` with its ground truth.

    Deterministic for a given ``seed`` (or the state of ``rng``; pass one or neither).
    ``edge=True`` applies the mild intensity edge effect of plate-edge wells.
    """
    check_phenotype(phenotype)
    if seed is not None and rng is not None:
        raise ValueError("pass either seed or rng, not both")
    if size < 32:
        raise ValueError(f"size must be at least 32 px, got {size}")
    rng = rng if rng is not None else np.random.default_rng(seed)
    cond = condition if condition is not None else DEFAULT_CONDITION
    if phenotype == "worms":
        image, labels = worms_field(bool(treated), size, rng, cond, edge)
    else:
        image, labels = cells_field(phenotype, bool(treated), size, rng, cond, edge)
    return SyntheticField(image=image, labels=labels, treated=bool(treated), phenotype=phenotype)


def generate_batch(
    phenotype: str,
    n: int,
    *,
    size: int = 256,
    seed: int = 0,
    positive_fraction: float = 0.5,
    condition: ImagingCondition | None = None,
) -> SyntheticBatch:
    """``n`` independent fields, ``round(n * positive_fraction)`` of them treated (shuffled).

    Field ``i`` is drawn from its own child seed of ``seed``, so batches are reproducible.
    """
    check_phenotype(phenotype)
    if not 0.0 <= positive_fraction <= 1.0:
        raise ValueError(f"positive_fraction must be in [0, 1], got {positive_fraction}")
    ss = np.random.SeedSequence(seed)
    order_rng = np.random.default_rng(ss.spawn(1)[0])
    labels = np.zeros(n, np.int64)
    labels[: int(round(n * positive_fraction))] = 1
    labels = order_rng.permutation(labels)
    images = np.empty((n, len(DEMO_CHANNELS), size, size), np.uint16)
    gt = np.empty((n, size, size), np.uint8)
    for i, child in enumerate(ss.spawn(n)):
        f = generate_field(
            phenotype,
            bool(labels[i]),
            size=size,
            rng=np.random.default_rng(child),
            condition=condition,
        )
        images[i] = f.image
        gt[i] = f.labels["gt"]
    return SyntheticBatch(images=images, labels=labels, gt=gt, phenotype=phenotype)

