"""Turn a plate field and its labels into napari LayerDataTuples (Qt-free, no napari import).

One function, `field_layer_data`, names and styles the layers of a field the same
way everywhere (sample data, the npe2 reader, the Plate widget): one additive image
layer per channel (``"B03 · DAPI"``) coloured by channel, contrast limits from the
0.5/99.8 percentiles, the physical pixel size as ``scale``, and Labels layers for the
ground truth (``"B03 · GT foci"``) and the instance masks (``"B03 · nuclei"``).
Each layer's ``metadata["napari_pcim"]`` records where it came from.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

# Colormap per known channel name (case-insensitive), then a cycle for unknown ones.
CHANNEL_COLORMAPS = {
    "dapi": "blue",
    "hoechst": "blue",
    "nuclei": "blue",
    "actin": "green",
    "phalloidin": "green",
    "gfp": "magenta",
    "brightfield": "gray",
    "bf": "gray",
    "phase": "gray",
    "transmitted": "gray",
}
_CYCLE = ("blue", "green", "magenta", "gray", "cyan", "yellow", "red")
_BRIGHTFIELD = {"brightfield", "bf", "phase", "transmitted"}

LayerDataTuple = tuple[Any, dict[str, Any], str]


def layer_prefix(well: str, field: int | None = None) -> str:
    """``"B03"`` for a well's only/first shown field, ``"B03 f1"`` when a field index is given."""
    return well if field is None else f"{well} f{field}"


def contrast_limits(plane: np.ndarray, low: float = 0.5, high: float = 99.8) -> tuple[float, float]:
    """Percentile contrast limits of a plane, widened to a non-empty range."""
    lo, hi = (float(v) for v in np.percentile(plane, (low, high)))
    return (lo, hi) if hi > lo else (lo, lo + 1.0)


def channel_colormap(name: str, index: int) -> str:
    """napari colormap name for a channel: by its name, else by its position."""
    return CHANNEL_COLORMAPS.get(name.strip().lower(), _CYCLE[index % len(_CYCLE)])


def gt_layer_name(phenotype: str | None) -> str:
    """``"GT foci"`` for a known phenotype, ``"GT"`` otherwise."""
    return f"GT {phenotype}" if phenotype else "GT"


def field_layer_data(
    image: np.ndarray,
    labels: Mapping[str, np.ndarray] | None,
    channel_names: Sequence[str],
    pixel_size: tuple[float, float] | None,
    well: str,
    field: int | None = None,
    phenotype: str | None = None,
    source: str | None = None,
) -> list[LayerDataTuple]:
    """LayerDataTuples for one (C, Y, X) field and its ``{name: (Y, X)}`` labels.

    ``field=None`` names layers by well only (``"B03 · DAPI"``); an int adds it
    (``"B03 f1 · DAPI"``). Brightfield is hidden when fluorescence channels are shown
    (additive blending would wash them out), except for the brightfield ``worms``
    phenotype, where the fluorescence channels are hidden instead.
    """
    image = np.asarray(image)
    if image.ndim != 3:
        raise ValueError(f"expected a (C, Y, X) field, got shape {image.shape}")
    if len(channel_names) != image.shape[0]:
        raise ValueError(
            f"{len(channel_names)} channel name(s) for a field with {image.shape[0]} channel(s)"
        )
    prefix = layer_prefix(well, field)
    scale = tuple(float(v) for v in pixel_size) if pixel_size else (1.0, 1.0)
    names = [str(n) for n in channel_names]
    is_bf = [n.strip().lower() in _BRIGHTFIELD for n in names]
    has_fluo = not all(is_bf)
    meta_base = {
        "well": well,
        "field": field,
        "phenotype": phenotype,
        "pixel_size": pixel_size,
        "channel_names": names,
        "source": source,
    }
    layers: list[LayerDataTuple] = []
    for i, (name, bf) in enumerate(zip(names, is_bf)):
        visible = (bf or not has_fluo) if phenotype == "worms" else (not bf or not has_fluo)
        kwargs = {
            "name": f"{prefix} · {name}",
            "colormap": channel_colormap(name, i),
            "blending": "additive",
            "contrast_limits": contrast_limits(image[i]),
            "scale": scale,
            "visible": visible,
            "metadata": {
                "napari_pcim": {**meta_base, "kind": "channel", "channel": name, "channel_index": i}
            },
        }
        layers.append((image[i], kwargs, "image"))
    for lname, lab in (labels or {}).items():
        lab = np.asarray(lab)
        is_gt = lname == "gt"
        kwargs = {
            "name": f"{prefix} · {gt_layer_name(phenotype) if is_gt else lname}",
            "scale": scale,
            "opacity": 0.6 if is_gt else 0.3,  # instance masks stay see-through
            "metadata": {
                "napari_pcim": {**meta_base, "kind": "gt" if is_gt else "instances", "label": lname}
            },
        }
        data = lab.astype(np.uint8) if is_gt else lab.astype(np.int32, copy=False)
        layers.append((data, kwargs, "labels"))
    return layers
