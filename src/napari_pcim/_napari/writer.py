"""npe2 writer: File ▸ Save Selected Layers… as an annotated OME-TIFF or OME-Zarr.

The selected image layers (channels, and attribution maps made by the Explain
widget) and labels layers of one field are written by
:func:`napari_pcim.export.write_annotated_field`, the same writer as the Export
widget and the CLI, with a ``<file name>.metrics.csv`` beside it when there are maps
and a ground-truth labels layer. The CSV is named after the whole file name, so
it is replaced only together with its image: napari's save dialog already asks
before replacing the image, so :func:`write_layers` overwrites both; the Export
widget asks itself. What the layers are (well, field, phenotype, each map's
metadata and display) is recorded so the npe2 reader can re-open the export.

This module imports neither Qt nor torch; the Export widget reuses its helpers.
"""

from __future__ import annotations

import csv
import io
import json
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from napari_pcim.atomic import write_text
from napari_pcim.layers import KIND, short_name
from napari_pcim.map_style import is_custom_colormap
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


def metrics_path(path: str | os.PathLike) -> Path:
    """Where the metrics CSV of an exported file goes: ``B03_f0.ome.tif.metrics.csv`` beside
    it (one CSV per image file, so the ``.ome.tif`` and ``.ome.zarr`` of a well keep theirs)."""
    path = Path(path)
    return path.with_name(f"{path.name}.metrics.csv")


#: The display attributes of a map layer kept in an export (so it re-opens looking the same).
MAP_STYLE = ("colormap", "contrast_limits", "blending", "opacity", "gamma")


def _json(value: Any) -> Any:
    """A JSON copy of ``value`` (numpy scalars and arrays, tuples, … as plain values or text)."""
    def default(v: Any) -> Any:
        return v.tolist() if isinstance(v, np.ndarray | np.generic) else str(v)

    return json.loads(json.dumps(value, default=default))


def _style(attrs: dict[str, Any]) -> dict[str, Any]:
    """The display of a map layer. A named napari colormap is kept by name; a custom one
    (napari-pcim's diverging maps) as ``{name, display_name, colors}``, so another session
    that never made it can still show it."""
    style = {k: attrs[k] for k in MAP_STYLE if attrs.get(k) is not None}
    cmap = style.pop("colormap", None)
    if isinstance(cmap, dict) and is_custom_colormap(cmap.get("name")):
        style["colormap"] = {"name": cmap["name"],
                             "display_name": cmap.get("display_name", cmap["name"]),
                             "colors": np.asarray(cmap["colors"], dtype=float).tolist()}
    else:
        name = cmap.get("name") if isinstance(cmap, dict) else getattr(cmap, "name", cmap)
        if isinstance(name, str):
            style["colormap"] = name
    return _json(style)


def split_layer_data(
    layer_data: Sequence[tuple[Any, dict[str, Any], str]],
) -> dict[str, Any]:
    """Sort napari layer-data tuples into the exporter's channels, maps and labels.

    Image layers napari-pcim made as maps (``metadata[KIND]`` other than ``"channel"``)
    are maps; other image layers are channels (an RGB or multi-channel image is
    refused); labels layers are labels, stored under napari-pcim's label name
    (``"gt"``, ``"nuclei"``) when they have one. Returns the keyword arguments of
    ``write_annotated_field`` (``channels``, ``maps``, ``labels``, ``pixel_size``,
    ``metadata``: the well, field and phenotype; ``map_metadata``) plus ``titles``:
    the labels' display names for the metrics CSV.
    """
    channels: dict[str, np.ndarray] = {}
    maps: dict[str, np.ndarray] = {}
    labels: dict[str, np.ndarray] = {}
    titles: dict[str, str] = {}
    map_meta: dict[str, Any] = {}
    field_meta: dict[str, Any] = {}
    scale = None
    shape = None
    for data, attrs, layer_type in layer_data:
        meta = dict(attrs.get("metadata") or {})
        name = short_name(str(attrs.get("name", f"layer {len(channels)}")), meta)
        origin = meta.get("napari_pcim") if isinstance(meta.get("napari_pcim"), dict) else {}
        for key in ("well", "field", "phenotype"):
            value = meta.get(key, origin.get(key))
            if value is not None:
                field_meta.setdefault(key, value)
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
            key = str(meta["label"]) if meta.get(KIND) == "labels" and meta.get("label") else name
            labels[key] = arr
            titles[key] = name
        elif layer_type == "image" and meta.get(KIND) not in (None, "channel"):
            maps[name] = arr.astype(np.float32, copy=False)
            map_meta[name] = _json({**meta, "style": _style(attrs)})
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
        "metadata": _json(field_meta),
        "map_metadata": map_meta,
        "titles": titles,
    }


def _gts(labels: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: v for k, v in labels.items() if "gt" in k.lower()}


def write_metrics_csv(path: Path, maps: dict[str, np.ndarray], labels: dict[str, np.ndarray],
                      *, titles: dict[str, str] | None = None, overwrite: bool = False) -> Path | None:
    """Metrics of every map against each ground-truth label layer, written atomically to
    :func:`metrics_path`; ``titles`` are the labels' names in the table."""
    from napari_pcim.metrics import evaluate_map

    gts = _gts(labels)
    if not maps or not gts:
        return None
    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for m_name, amap in maps.items():
            for g_name, gt in gts.items():
                title = (titles or {}).get(g_name, g_name)
                rows.append((m_name, title, evaluate_map(amap, np.asarray(gt) > 0)))
    return write_text(metrics_path(path), metrics_csv(rows), overwrite=overwrite)


def export_targets(path: str | os.PathLike, layer_data: Sequence[tuple[Any, dict[str, Any], str]]
                   ) -> list[Path]:
    """The files an export of ``layer_data`` to ``path`` writes: the image, and its metrics
    CSV when there are maps and a ground truth."""
    payload = split_layer_data(layer_data)
    has_csv = bool(payload["maps"]) and bool(_gts(payload["labels"]))
    return [Path(path), *([metrics_path(path)] if has_csv else [])]


def export_layer_data(
    path: str | os.PathLike,
    layer_data: Sequence[tuple[Any, dict[str, Any], str]],
    *,
    overwrite: bool = False,
) -> list[str]:
    """Write layer-data tuples with ``write_annotated_field`` plus the metrics CSV.

    Without ``overwrite``, an existing image or metrics CSV is refused before anything
    is written (FileExistsError naming it).
    """
    from napari_pcim.export import write_annotated_field

    path = Path(path)
    if not path.name.lower().endswith(SUFFIXES):
        raise ValueError(f"{path}: the file name must end with one of {', '.join(SUFFIXES)}")
    if not overwrite:
        taken = [str(p) for p in export_targets(path, layer_data) if p.exists()]
        if taken:
            raise FileExistsError(f"{', '.join(taken)} already exist(s): not replaced "
                                  "(choose another name, or replace them explicitly)")
    payload = split_layer_data(layer_data)
    titles = payload.pop("titles")
    written = write_annotated_field(path, overwrite=overwrite, **payload)
    out = [str(written)]
    csv_path = write_metrics_csv(path, payload["maps"], payload["labels"], titles=titles,
                                 overwrite=overwrite)
    if csv_path is not None:
        out.append(str(csv_path))
    return out


