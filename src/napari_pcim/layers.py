"""The napari layer contract of napari-pcim, as LayerDataTuples (Qt-free, no napari import).

Every layer napari-pcim shows is built here, so names, colours, contrast limits and
metadata are the same everywhere (sample data, the npe2 reader, the widgets):

- :func:`field_layer_data`: a field's channels and labels. One additive image layer
  per channel (``"B03 · DAPI"``; another field than the first adds it:
  ``"B03 f1 · DAPI"``) coloured by channel, contrast limits from the 0.5/99.8
  percentiles, the physical pixel size as ``scale``; Labels layers for the ground
  truth (``"B03 · GT foci"``) and the instance masks (``"B03 · nuclei"``).
- :func:`attribution_layer_data` / :func:`top_layer_data`: an attribution map
  (``"PCIM · treated · B03 f0"``) and the Labels layer of its top pixels, built by
  :func:`result_layer_data` (a live ``explain()`` result, or its per-channel maps
  ``"PCIM · treated · GFP · B03 f0"``) and :func:`stored_map_layer_data` (a result
  store); :func:`cell_share_layer_data`: cells filled with their share;
  :func:`compare_grid_data`: a labelled wells × methods grid of maps.
- Readable maps (:mod:`napari_pcim.map_style`): a colormap per method (diverging,
  symmetric about 0, for signed maps), one contrast range per method
  (``ContrastScales``), explained in each layer's ``metadata["contrast"]``.

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

from napari_pcim.cells import fill_cells
from napari_pcim.map_style import (  # noqa: F401 - part of the layer contract
    DIVERGING_COLOURS,
    METHOD_COLORMAPS,
    OTHER_COLORMAP,
    SCALE_PERCENTILE,
    ContrastScales,
    diverging_colormap,
    is_custom_colormap,
    is_signed,
)
from napari_pcim.vocabulary import FIRST_FIELD, field_label

#: The metadata key naming what a napari-pcim layer is (see the module docstring).
KIND = "pcim_kind"
#: Default share of pixels in a "top pixels" labels layer.
TOP_FRACTION = 0.05
SEP = " · "

# Colormap per known channel name (case-insensitive), then a cycle for unknown ones.
CHANNEL_COLORMAPS = {
    "dapi": "blue", "hoechst": "blue", "nuclei": "blue", "actin": "green", "phalloidin": "green",
    "gfp": "magenta", "brightfield": "gray", "bf": "gray", "phase": "gray", "transmitted": "gray",
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
            "visible": is_gt,  # instance masks start hidden; the ground truth shows as contours
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


#: Contour width of the ground-truth Labels layer (napari sets it on the layer, not in add_labels).
GT_CONTOUR = 2


def style_label_layer(layer: Any) -> None:
    """Draw a napari-pcim ground-truth Labels layer as contours (others are left as they are)."""
    meta = getattr(layer, "metadata", None)
    if isinstance(meta, dict) and meta.get(KIND) == "labels" and meta.get("label") == "gt":
        layer.contour = GT_CONTOUR


def top_mask(amap: np.ndarray, fraction: float = TOP_FRACTION) -> np.ndarray:
    """uint8 mask of the ``fraction`` highest-scoring pixels (positive values only)."""
    threshold = np.quantile(amap, 1.0 - fraction)
    return ((amap >= threshold) & (amap > 0)).astype(np.uint8)


def attribution_layer_name(
    label: str, target: str, well: str, field: int, channel: str | None = None
) -> str:
    """``"PCIM · treated · B03 f0"``: method label, target class, (channel,) field."""
    parts = (label, str(target), *((channel,) if channel else ()), field_label(well, field))
    return SEP.join(parts)


def attribution_layer_data(
    amap: np.ndarray,
    *,
    label: str,
    target: str,
    well: str,
    field: int,
    scale: Sequence[float],
    translate: Sequence[float] = (0.0, 0.0),
    metadata: Mapping[str, Any] | None = None,
    scales: ContrastScales | None = None,
    channel: str | None = None,
) -> LayerDataTuple:
    """An attribution map as an additive image layer, styled by its method.

    The map is pooled into ``scales`` (the session's :class:`ContrastScales`; default: a
    new one, so the map is scaled by itself) under ``metadata["method"]``, and the
    layer gets the method's shared colormap and contrast limits. ``metadata`` (method,
    options, probabilities, model, ...) is kept beside the layer's kind, well, field
    and target. With ``channel`` it is that channel's part of the map
    (``"PCIM · treated · GFP · B03 f0"``), kind ``"attribution_channel"``; it is
    styled by the method's scale but does not change it.
    """
    amap = np.asarray(amap, dtype=np.float32)
    meta = dict(metadata or {})
    method, scales = str(meta.get("method") or label), scales or ContrastScales()
    if channel is None:
        scales.add(method, amap)
    style = scales.style(method, label, signed=channel is not None and is_signed(amap))
    kwargs = {
        "name": attribution_layer_name(label, target, well, field, channel),
        "colormap": style["colormap"],
        "blending": "additive",
        "opacity": 0.7,
        "contrast_limits": style["contrast_limits"],
        "scale": tuple(float(s) for s in scale),
        "translate": tuple(float(t) for t in translate),
        "metadata": {
            **meta, KIND: "attribution" if channel is None else "attribution_channel",
            "well": well, "field": int(field), "target": str(target),
            "method": method, "label": label, "contrast": style["contrast"],
            **({"channel": channel} if channel is not None else {}),
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


def _result_meta(attribution: Any, metadata: Mapping[str, Any] | None) -> dict[str, Any]:
    classes = [str(c) for c in attribution.classes]
    probs = np.asarray(attribution.probabilities)[0]
    return {
        **(metadata or {}),
        "method": attribution.method,
        "options": plain(dict(attribution.options)),
        "classes": classes,
        "probabilities": {c: float(p) for c, p in zip(classes, probs)},
        "timings": {k: float(v) for k, v in dict(attribution.timings).items()},
        "device": str(attribution.device),
    }


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
    scales: ContrastScales | None = None,
    channels: bool = False,
) -> list[LayerDataTuple]:
    """Layers of a one-field ``explain()`` result: one map per target (plus its top pixels).

    ``metadata`` (model, plate, ...) is added to what the result itself says: method,
    options, target index, classes, probabilities, timings and device. The maps are
    pooled into ``scales`` (see :func:`attribution_layer_data`). With ``channels``,
    the layers are the per-channel maps of a ``per_channel=True`` result instead, one
    per target and channel (``"PCIM · treated · GFP · B03 f0"``).
    """
    if channels and getattr(attribution, "channel_maps", None) is None:
        raise ValueError("this result has no per-channel maps: run it with 'per channel' on")
    common = _result_meta(attribution, metadata)
    classes = common["classes"]
    out = []
    for t, cls_index in enumerate(np.asarray(attribution.targets)[0]):
        kw = {"label": label, "target": classes[int(cls_index)], "well": well, "field": field,
              "scale": scale, "translate": translate, "scales": scales}
        meta = {**common, "target_index": int(cls_index)}
        if channels:
            importance = np.asarray(attribution.channel_importance)[0, t]
            out += [
                attribution_layer_data(
                    attribution.channel_maps[0, t, c], channel=str(name), **kw,
                    metadata={**meta, "channel_importance": float(importance[c])},
                )
                for c, name in enumerate(attribution.channel_names)
            ]
            continue
        out.append(attribution_layer_data(attribution.maps[0, t], metadata=meta, **kw))
        if top_fraction:
            out.append(top_layer_data(out[-1], label, top_fraction))
    return out


def cell_share_layer_data(
    labels: np.ndarray,
    table: Any,
    *,
    name: str,
    well: str,
    field: int,
    scale: Sequence[float],
    translate: Sequence[float] = (0.0, 0.0),
    column: str = "share",
) -> LayerDataTuple:
    """An image of ``labels`` whose cells are filled with ``table[column]`` (a
    :func:`napari_pcim.cells.cell_table`), named ``"cell share · <name>"``."""
    image = fill_cells(labels, table, column)
    hi = float(image.max(initial=0.0))
    kwargs = {
        "name": f"cell {column} · {name}",
        "colormap": "inferno",
        "blending": "additive",
        "contrast_limits": (0.0, hi if hi > 0 else 1.0),
        "scale": tuple(float(s) for s in scale),
        "translate": tuple(float(t) for t in translate),
        "metadata": {KIND: "cell_share", "well": well, "field": int(field), "column": column,
                     "source": name},
    }
    return image, kwargs, "image"


def stored_map_layer_data(
    maps: np.ndarray,
    record: Mapping[str, Any],
    store_meta: Mapping[str, Any],
    *,
    label: str,
    classes: Sequence[str],
    scale: Sequence[float],
    store_path: str,
    scales: ContrastScales | None = None,
) -> list[LayerDataTuple]:
    """Layers of one field's maps from a whole-plate result store (``record["targets"]``
    names each map's class; ``store_meta`` is the store's root metadata), pooled into
    ``scales``."""
    well, field = str(record["well"]), int(record["field"])
    out = []
    for amap, target in zip(maps, record["targets"]):
        out.append(attribution_layer_data(
            amap, label=label, target=target, well=well, field=field, scale=scale,
            scales=scales, metadata={
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


GRID_GAP = 0.25  # gap between the tiles of a compare grid, as a fraction of the largest tile


def compare_grid_data(
    tiles: Sequence[tuple[np.ndarray, Mapping[str, Any], Sequence[float]]],
    scales: ContrastScales,
    origin: Sequence[float] = (0.0, 0.0),
) -> list[LayerDataTuple]:
    """A grid of attribution maps, a row per method and a column per well: ``tiles`` are
    ``(map, metadata, scale)`` of attribution layers, one per (well, method). Each is an
    image layer ``"compare · PCIM · treated · B03 f0"`` (kind ``"compare_tile"``) on its
    method's shared scale, placed from ``origin`` (world, top left); the Shapes layer
    ``"compare · labels"`` outlines each tile, its well, method and class as text."""
    keys = [(str(m["well"]), str(m["method"])) for _, m, _ in tiles]
    if len(set(keys)) < len(keys):
        raise ValueError("a compare grid takes one map per well and method")
    wells, methods = (list(dict.fromkeys(k[i] for k in keys)) for i in (0, 1))
    step = np.max([np.multiply(a.shape[-2:], s) for a, _, s in tiles], axis=0) * (1 + GRID_GAP)
    out, boxes, captions = [], [], []
    for (amap, meta, scale), (well, method) in zip(tiles, keys):
        top = np.asarray(origin, float) + step * (methods.index(method), wells.index(well))
        label, target = str(meta.get("label") or method), str(meta["target"])
        style = scales.style(method, label)
        out.append((amap, {
            "name": SEP.join(("compare", attribution_layer_name(label, target, well, meta["field"]))),
            "colormap": style["colormap"], "contrast_limits": style["contrast_limits"],
            "blending": "additive", "scale": tuple(scale), "translate": tuple(top),
            "metadata": {KIND: "compare_tile", "well": well, "field": int(meta["field"]),
                         "method": method, "label": label, "target": target,
                         "contrast": style["contrast"]},
        }, "image"))
        bottom = top + np.multiply(amap.shape[-2:], scale)
        boxes.append(np.array([top, (top[0], bottom[1]), bottom, (bottom[0], top[1])]))
        p = (meta.get("probabilities") or {}).get(target)
        captions.append(SEP.join((well, label, target)) + (f" (p {p:.2f})" if p is not None else ""))
    out.append((boxes, {
        "name": "compare · labels", "shape_type": "rectangle", "edge_color": "white",
        "face_color": "transparent", "edge_width": float(step.min()) * 0.01, "opacity": 1.0,
        "features": {"caption": captions},
        "text": {"string": "{caption}", "anchor": "upper_left", "color": "white", "size": 10},
        "metadata": {KIND: "compare_labels", "wells": wells, "methods": methods},
    }, "shapes"))
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
