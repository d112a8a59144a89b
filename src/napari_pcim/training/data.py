"""Training data for the demo classifiers: random crops of a plate, or generated fields.

:func:`load_training_data` returns raw uint16 fields and 0/1 labels (index into
:data:`napari_pcim.vocabulary.DEMO_CLASSES`, 1 = the hit class), either cropped from
a plate whose plate map names each well's phenotype, or generated with
:func:`napari_pcim.synth.generate_batch`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from napari_pcim.vocabulary import DEMO_CLASSES, field_label

#: Generated training fields of the bundled foci models.
DEFAULT_N_TRAIN = 1000


def _plate_crops(plate_path: str | Path, n: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``n`` random size×size crops of a plate's labelled fields, balanced over the two classes."""
    from napari_pcim.plate_io import open_plate

    plate = open_plate(plate_path)
    by_class: dict[int, list[tuple[str, int]]] = {i: [] for i in range(len(DEMO_CLASSES))}
    for well in plate.wells:
        name = plate.phenotypes.get(well)
        if name not in DEMO_CLASSES:
            continue
        by_class[DEMO_CLASSES.index(name)] += [(well, f) for f in range(plate.n_fields(well))]
    for label, fields in by_class.items():
        if not fields:
            raise ValueError(
                f"{plate_path}: no fields of class {DEMO_CLASSES[label]!r}; the plate map's phenotype "
                f"column must name both {list(DEMO_CLASSES)} wells to train on this plate"
            )
    rng = np.random.default_rng(seed)
    cache: dict[tuple[str, int], np.ndarray] = {}
    images = np.empty((n, len(plate.channel_names), size, size), np.uint16)
    labels = rng.permutation(np.arange(n) % len(DEMO_CLASSES)).astype(np.int64)
    for i, label in enumerate(labels):
        key = by_class[int(label)][rng.integers(len(by_class[int(label)]))]
        if key not in cache:
            cache[key] = np.asarray(plate.read_field(*key))
        field = cache[key]
        Y, X = field.shape[-2:]
        if Y < size or X < size:
            raise ValueError(
                f"{plate_path}: field {field_label(*key)} is {Y}×{X} px, smaller than the "
                f"{size}×{size} training crop; pass a smaller size"
            )
        y, x = rng.integers(Y - size + 1), rng.integers(X - size + 1)
        images[i] = field[:, y : y + size, x : x + size]
    return images, labels, list(plate.channel_names)


def load_training_data(
    phenotype: str = "foci",
    plate: str | Path | None = None,
    n: int = DEFAULT_N_TRAIN,
    size: int = 128,
    seed: int = 0,
    *,
    return_channels: bool = False,
) -> tuple[np.ndarray, np.ndarray] | tuple[np.ndarray, np.ndarray, list[str]]:
    """Raw training fields (n, C, size, size) uint16 and labels (n,) int64 in {0, 1}.

    From ``plate`` (random crops, plate-map labels) or, without one, generated with
    :func:`napari_pcim.synth.generate_batch`. With ``return_channels`` the channel
    names (in image order) come third.
    """
    if n < 2:
        raise ValueError(f"need at least 2 training fields, got n={n}")
    if plate is not None:
        images, labels, channels = _plate_crops(plate, n, size, seed)
    else:
        from napari_pcim.synth import generate_batch

        batch = generate_batch(phenotype, n, size=size, seed=seed)
        images, labels, channels = batch.images, batch.labels, list(batch.channel_names)
    return (images, labels, channels) if return_channels else (images, labels)
