"""The napari layer contract of napari-pcim, as LayerDataTuples (Qt-free, no napari import).

Every layer napari-pcim shows is built here, so names, colours, contrast limits and
metadata are the same everywhere (sample data, the npe2 reader, the widgets):

- :func:`field_layer_data`: a field's channels and labels. One additive image layer
  per channel (``"B03 · DAPI"``; another field than the first adds it:
  ``"B03 f1 · DAPI"``) coloured by channel, contrast limits from the 0.5/99.8
  percentiles, the physical pixel size as ``scale``; Labels layers for the ground
  truth (``"B03 · GT foci"``) and the instance masks (``"B03 · nuclei"``).
- :func:`attribution_layer_data` / :func:`top_layer_data`: an attribution map
  (``"PCIM · treated · B03 f0"``) and the Labels layer of its top pixels;
  :func:`result_layer_data` and :func:`stored_map_layer_data` build them for a live
  ``explain()`` result and for maps read back from a whole-plate result store.

Each layer's ``metadata[KIND]`` says what it is (``"channel"``, ``"labels"``,
``"attribution"``, ``"attribution_top"``) beside its ``"well"`` and ``"field"``;
attribution layers keep their ``"target"`` class there too, so nothing is ever
parsed back out of a layer name. Channel and label layers also keep
``metadata["napari_pcim"]``: where the field came from.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from napari_pcim.vocabulary import FIRST_FIELD, field_label

#: The metadata key naming what a napari-pcim layer is (see the module docstring).
KIND = "pcim_kind"
#: Colormaps of attribution maps, one per target in turn.
ATTRIBUTION_COLORMAPS = ("inferno", "magma")
#: Default share of pixels in a "top pixels" labels layer.
TOP_FRACTION = 0.05
SEP = " · "

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


def layer_prefix(well: str, field: int = FIRST_FIELD) -> str:
    """Name prefix of a field's channel/label layers: ``"B03"`` for the first field, else
    ``"B03 f1"``."""
    return well if field == FIRST_FIELD else field_label(well, field)


def short_name(name: str, meta: Mapping[str, Any]) -> str:
    """A layer's name without its well/field (``"B03 · DAPI" -> "DAPI"``,
    ``"PCIM · treated · B03 f0" -> "PCIM · treated"``), from the well and field in ``meta``."""
    origin = meta.get("napari_pcim") or {}
    well = meta.get("well") or origin.get("well")
    if not well:
        return name
    field = meta.get("field", origin.get("field"))
    field = FIRST_FIELD if field is None else int(field)
    parts = name.split(SEP)
    if len(parts) > 1 and parts[0] == layer_prefix(well, field):
        parts = parts[1:]
    elif len(parts) > 1 and parts[-1] == field_label(well, field):
        parts = parts[:-1]
    return SEP.join(parts)


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
    field: int = FIRST_FIELD,
    phenotype: str | None = None,
    source: str | None = None,
) -> list[LayerDataTuple]:
    """LayerDataTuples for one (C, Y, X) field and its ``{name: (Y, X)}`` labels.

    Layers are named by :func:`layer_prefix` (``"B03 · DAPI"``, ``"B03 f1 · DAPI"``).
    Brightfield is hidden when fluorescence channels are shown
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
                KIND: "channel", "well": well, "field": field, "channel": name,
                "napari_pcim": {
                    **meta_base, "kind": "channel", "channel": name, "channel_index": i
                },
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
                KIND: "labels", "well": well, "field": field, "label": lname,
                "napari_pcim": {
                    **meta_base, "kind": "gt" if is_gt else "instances", "label": lname
                },
            },
        }
        data = lab.astype(np.uint8) if is_gt else lab.astype(np.int32, copy=False)
        layers.append((data, kwargs, "labels"))
    return layers


def attribution_limits(amap: np.ndarray) -> tuple[float, float]:
    """Contrast limits of a map: 0 to the 99.5th percentile, so only positive evidence glows.

    Maps with no positive value (all ≤ 0) fall back to their own minimum.
    """
    finite = amap[np.isfinite(amap)]
    if finite.size == 0:
        return 0.0, 1.0
    lo = 0.0 if finite.max() > 0 else float(finite.min())
    hi = float(np.percentile(finite, 99.5))
    if hi <= lo:
        hi = float(finite.max()) if finite.max() > lo else lo + 1.0
    return lo, hi


def top_mask(amap: np.ndarray, fraction: float = TOP_FRACTION) -> np.ndarray:
    """uint8 mask of the ``fraction`` highest-scoring pixels (positive values only)."""
    threshold = np.quantile(amap, 1.0 - fraction)
    return ((amap >= threshold) & (amap > 0)).astype(np.uint8)


def attribution_layer_name(label: str, target: str, well: str, field: int) -> str:
    """``"PCIM · treated · B03 f0"``: method label, target class, field."""
    return SEP.join((label, str(target), field_label(well, field)))


def attribution_layer_data(
    amap: np.ndarray,
    *,
    label: str,
    target: str,
    well: str,
    field: int,
    scale: Sequence[float],
    translate: Sequence[float] = (0.0, 0.0),
    index: int = 0,
    metadata: Mapping[str, Any] | None = None,
) -> LayerDataTuple:
    """An attribution map as an additive image layer; ``index`` picks the colormap.

    ``metadata`` (method, options, probabilities, model, ...) is kept beside the
    layer's kind, well, field and target.
    """
    amap = np.asarray(amap, dtype=np.float32)
    kwargs = {
        "name": attribution_layer_name(label, target, well, field),
        "colormap": ATTRIBUTION_COLORMAPS[index % len(ATTRIBUTION_COLORMAPS)],
        "blending": "additive",
        "opacity": 0.7,
        "contrast_limits": attribution_limits(amap),
        "scale": tuple(float(s) for s in scale),
        "translate": tuple(float(t) for t in translate),
        "metadata": {
            **(metadata or {}), KIND: "attribution", "well": well, "field": int(field),
            "target": str(target),
        },
    }
    return amap, kwargs, "image"


def top_layer_data(
    map_layer: LayerDataTuple, label: str, fraction: float = TOP_FRACTION
) -> LayerDataTuple:
    """The Labels layer of the ``fraction`` top pixels of an attribution layer's map
    (``"PCIM top 5% · treated · B03 f0"``)."""
    amap, kwargs, _ = map_layer
    meta = kwargs["metadata"]
    name = attribution_layer_name(
        f"{label} top {fraction:.0%}", meta["target"], meta["well"], meta["field"]
    )
    top_kwargs = {
        "name": name,
        "scale": kwargs["scale"],
        "translate": kwargs["translate"],
        "opacity": 0.6,
        "metadata": {**meta, KIND: "attribution_top", "top_fraction": fraction},
    }
    return top_mask(amap, fraction), top_kwargs, "labels"


def result_layer_data(
    attribution: Any,
    *,
    label: str,
    well: str,
    field: int,
    scale: Sequence[float],
    translate: Sequence[float] = (0.0, 0.0),
    metadata: Mapping[str, Any] | None = None,
    top_fraction: float | None = None,
) -> list[LayerDataTuple]:
    """Layers of a one-field ``explain()`` result: one map per target (plus its top pixels).

    ``metadata`` (model, plate, ...) is added to what the result itself says: method,
    options, target index, classes, probabilities, timings and device.
    """
    classes = [str(c) for c in attribution.classes]
    probs = np.asarray(attribution.probabilities)[0]
    common = {
        **(metadata or {}),
        "method": attribution.method,
        "options": plain(dict(attribution.options)),
        "classes": classes,
        "probabilities": {c: float(p) for c, p in zip(classes, probs)},
        "timings": {k: float(v) for k, v in dict(attribution.timings).items()},
        "device": str(attribution.device),
    }
    out = []
    for t, cls_index in enumerate(np.asarray(attribution.targets)[0]):
        layer = attribution_layer_data(
            attribution.maps[0, t], label=label, target=classes[int(cls_index)], well=well,
            field=field, scale=scale, translate=translate, index=t,
            metadata={**common, "target_index": int(cls_index)},
        )
        out.append(layer)
        if top_fraction:
            out.append(top_layer_data(layer, label, top_fraction))
    return out


def stored_map_layer_data(
    maps: np.ndarray,
    record: Mapping[str, Any],
    store_meta: Mapping[str, Any],
    *,
    label: str,
    classes: Sequence[str],
    scale: Sequence[float],
    store_path: str,
) -> list[LayerDataTuple]:
    """Layers of one field's maps from a whole-plate result store (``record["targets"]``
    names each map's class; ``store_meta`` is the store's root metadata)."""
    well, field = str(record["well"]), int(record["field"])
    out = []
    for t, (amap, target) in enumerate(zip(maps, record["targets"])):
        out.append(attribution_layer_data(
            amap, label=label, target=target, well=well, field=field, scale=scale,
            metadata={
                "method": store_meta.get("method"),
                "options": store_meta.get("options", {}),
                "target_index": list(classes).index(target) if target in classes else None,
                "classes": list(classes),
                "probabilities": {c: record[f"p_{c}"] for c in classes},
                "model": store_meta.get("model"),
                "model_sha256": store_meta.get("model_sha256"),
                "timings": {"total": float(record.get("seconds", 0.0))},
                "plate": store_meta.get("plate"),
                "result_store": store_path,
                "record": dict(record),
            },
        ))
    return out


def plain(value: Any) -> Any:
    """A JSON-friendly copy of option values (arrays become a short description)."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return f"array{value.shape}"
    if isinstance(value, np.generic):
        return value.item()
    return value
