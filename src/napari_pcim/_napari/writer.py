"""npe2 writer: File ▸ Save Selected Layers… as an annotated OME-TIFF or OME-Zarr.

The selected image layers (channels, and attribution maps made by the Explain
widget) and labels layers of one field are written by
:func:`napari_pcim.export.write_annotated_field`, the same writer as the Export
widget and the CLI, with a ``<name>_metrics.csv`` beside it when there are maps
and a ground-truth labels layer. napari's save dialog already asks before
replacing a file, so :func:`write_layers` overwrites.

This module imports neither Qt nor torch; the Export widget reuses its helpers.
"""

from __future__ import annotations

import csv
import io
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from napari_pcim.atomic import write_text
from napari_pcim.layers import KIND, short_name
from napari_pcim.vocabulary import field_stem


def write_layers(path: str, layer_data: list[tuple[Any, dict[str, Any], str]]) -> list[str]:
    """Write ``layer_data`` (napari's (data, attributes, layer type) tuples) to ``path``."""
    return export_layer_data(path, layer_data, overwrite=True)


def metrics_csv(rows: list[tuple[str, str, dict[str, float]]]) -> str:
    """CSV text: one row per (attribution layer, GT layer) with one column per metric."""
    names = list(dict.fromkeys(k for _, _, m in rows for k in m))
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["attribution", "ground_truth", *names])
    for attribution, gt, metrics in rows:
        writer.writerow([attribution, gt, *(f"{metrics.get(n, float('nan')):.6g}" for n in names)])
    return buf.getvalue()


SUFFIXES = (".ome.tif", ".ome.tiff", ".ome.zarr")


def default_filename(well: str, field: int, suffix: str = ".ome.tif") -> str:
    """The file name a field is exported under by default: ``"B03_f0.ome.tif"`` (as the CLI)."""
    return f"{field_stem(well, field)}{suffix}"


def export_stem(path: Path) -> str:
    """``"a/B03.ome.tif" -> "B03"``: the file name without its OME suffix."""
    name = path.name
    for suffix in SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def metrics_path(path: str | os.PathLike) -> Path:
    """Where the metrics CSV of an exported file goes: ``<stem>_metrics.csv`` beside it."""
    path = Path(path)
    return path.with_name(f"{export_stem(path)}_metrics.csv")


def split_layer_data(
    layer_data: Sequence[tuple[Any, dict[str, Any], str]],
) -> dict[str, Any]:
    """Sort napari layer-data tuples into the exporter's channels, maps and labels.

    Image layers whose ``metadata[KIND]`` is ``"attribution"`` are maps; other image
    layers are channels (an RGB or multi-channel image is refused); labels
    layers are labels. Returns the keyword arguments of ``write_annotated_field``
    (``channels``, ``maps``, ``labels``, ``pixel_size``, ``metadata``).
    """
    channels: dict[str, np.ndarray] = {}
    maps: dict[str, np.ndarray] = {}
    labels: dict[str, np.ndarray] = {}
    map_meta: dict[str, Any] = {}
    scale = None
    shape = None
    for data, attrs, layer_type in layer_data:
        meta = dict(attrs.get("metadata") or {})
        name = short_name(str(attrs.get("name", f"layer {len(channels)}")), meta)
        arr = np.asarray(data)
        if arr.ndim != 2:
            raise ValueError(
                f"layer {attrs.get('name')!r} has shape {arr.shape}: only 2-D (Y, X) layers of "
                "one field can be exported"
            )
        if shape is None:
            shape = arr.shape
        elif arr.shape != shape:
            raise ValueError(
                f"layer {attrs.get('name')!r} is {arr.shape} but the others are {shape}: "
                "export the layers of one field"
            )
        if scale is None and attrs.get("scale") is not None:
            scale = tuple(float(s) for s in attrs["scale"][-2:])
        if layer_type == "labels":
            labels[name] = arr
        elif layer_type == "image" and meta.get(KIND) in ("attribution",):
            maps[name] = arr.astype(np.float32, copy=False)
            map_meta[name] = {k: v for k, v in meta.items() if k != KIND}
        elif layer_type == "image":
            channels[name] = arr
        else:
            raise ValueError(f"layer {attrs.get('name')!r}: cannot export a {layer_type} layer")
    if not channels:
        raise ValueError("nothing to export: select at least one channel image layer")
    return {
        "channels": channels,
        "maps": maps,
        "labels": labels,
        "pixel_size": None if scale is None or scale == (1.0, 1.0) else scale,
        "metadata": {"napari_pcim_maps": map_meta} if map_meta else {},
    }


def write_metrics_csv(path: Path, maps: dict[str, np.ndarray], labels: dict[str, np.ndarray]) -> Path | None:
    """Metrics of every map against each ground-truth label layer, written atomically."""
    from napari_pcim.metrics import evaluate_map

    gts = {k: v for k, v in labels.items() if "gt" in k.lower()}
    if not maps or not gts:
        return None
    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for m_name, amap in maps.items():
            for g_name, gt in gts.items():
                rows.append((m_name, g_name, evaluate_map(amap, np.asarray(gt) > 0)))
    return write_text(metrics_path(path), metrics_csv(rows))


def export_layer_data(
    path: str | os.PathLike,
    layer_data: Sequence[tuple[Any, dict[str, Any], str]],
    *,
    overwrite: bool = False,
) -> list[str]:
    """Write layer-data tuples with ``write_annotated_field`` plus the metrics CSV."""
    from napari_pcim.export import write_annotated_field

    path = Path(path)
    if not path.name.lower().endswith(SUFFIXES):
        raise ValueError(f"{path}: the file name must end with one of {', '.join(SUFFIXES)}")
    payload = split_layer_data(layer_data)
    written = write_annotated_field(path, overwrite=overwrite, **payload)
    out = [str(written if written is not None else path)]
    csv_path = write_metrics_csv(path, payload["maps"], payload["labels"])
    if csv_path is not None:
        out.append(str(csv_path))
    return out


