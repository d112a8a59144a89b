"""Per-cell attribution: which cells (nuclei, worms, any label image) carry the evidence.

:func:`cell_table` turns an attribution map and a label image into one row per
object: its area, the sum, mean and maximum of the map over it, and its ``share``
of the field's positive attribution. With per-channel maps it adds one
``share_<channel>`` column per channel. :func:`compartment_shares` splits the
positive attribution into nucleus, cytoplasm and background. :func:`fill_cells`
paints each object with one of its table values.

The per-label sums use ``scipy.ndimage`` (``sum_labels``, ``maximum``), which
computes each statistic for all labels in one pass; ``skimage.measure.regionprops_table``
would also do it, but re-scans the image per property and has no "share of the
positive mass" property, so the few lines here are simpler.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["cell_table", "compartment_shares", "fill_cells"]


def _check(name: str, arr: np.ndarray, shape: tuple[int, ...]) -> None:
    if arr.shape != shape:
        raise ValueError(f"{name} has shape {arr.shape}; expected {shape} like the attribution map")


def _finite_map(attribution: Any) -> np.ndarray:
    amap = np.asarray(attribution, dtype=np.float64)
    if amap.ndim != 2:
        raise ValueError(f"the attribution map must be 2-D (Y, X), got shape {amap.shape}")
    if not np.isfinite(amap).all():
        raise ValueError(
            f"the attribution map has {int((~np.isfinite(amap)).sum())} non-finite pixel(s)"
        )
    return amap


def cell_table(
    attribution_map: Any,
    labels: Any,
    channel_maps: Mapping[str, Any] | None = None,
) -> Any:
    """One row per label id of ``labels`` (Y, X) with the statistics of ``attribution_map`` (Y, X).

    Columns: ``label``, ``area`` (pixels), ``sum``, ``mean``, ``max`` of the map over
    the object, and ``share``: the object's positive attribution divided by the
    field's total positive attribution (0 when the field has none). With
    ``channel_maps`` ({channel name: (Y, X) map}) one ``share_<channel>`` column per
    channel gives the object's positive attribution in that channel divided by the
    field's positive attribution summed over all channels. Rows are sorted by
    ``share``, largest first; label 0 (background) is not a row.
    """
    import pandas as pd
    from scipy import ndimage

    amap = _finite_map(attribution_map)
    lab = np.asarray(labels)
    _check("labels", lab, amap.shape)
    if not (np.issubdtype(lab.dtype, np.integer) or lab.dtype == bool):
        raise ValueError(f"labels must be an integer label image, got dtype {lab.dtype}")
    lab = lab.astype(np.int64, copy=False)
    ids = np.unique(lab)
    ids = ids[ids != 0]
    columns = ["label", "area", "sum", "mean", "max", "share"]
    if ids.size == 0:
        extra = [f"share_{c}" for c in (channel_maps or {})]
        return pd.DataFrame(columns=columns + extra)
    area = ndimage.sum_labels(np.ones_like(amap), lab, ids)
    total = ndimage.sum_labels(amap, lab, ids)
    positive = np.clip(amap, 0, None)
    pos = ndimage.sum_labels(positive, lab, ids)
    field_pos = positive.sum()
    table = pd.DataFrame({
        "label": ids,
        "area": area.astype(np.int64),
        "sum": total,
        "mean": total / area,
        "max": np.asarray(ndimage.maximum(amap, lab, ids), dtype=np.float64),
        "share": pos / field_pos if field_pos > 0 else np.zeros_like(pos),
    })
    if channel_maps:
        maps = {name: np.clip(_finite_map(m), 0, None) for name, m in channel_maps.items()}
        for name, m in maps.items():
            _check(f"channel map {name!r}", m, amap.shape)
        all_pos = sum(float(m.sum()) for m in maps.values())
        for name, m in maps.items():
            per = ndimage.sum_labels(m, lab, ids)
            table[f"share_{name}"] = per / all_pos if all_pos > 0 else np.zeros_like(per)
    return table.sort_values("share", ascending=False, kind="stable").reset_index(drop=True)


def compartment_shares(attribution_map: Any, nuclei: Any, cells: Any) -> dict[str, float]:
    """Shares of the field's positive attribution in nuclei, cytoplasm and background.

    ``nuclei`` and ``cells`` are label images (Y, X); cytoplasm is a cell's area
    outside any nucleus, background is outside every cell and nucleus. The three
    shares sum to 1 (all 0 when the map has no positive value).
    """
    amap = _finite_map(attribution_map)
    nuc = np.asarray(nuclei) > 0
    cell = np.asarray(cells) > 0
    _check("nuclei", nuc, amap.shape)
    _check("cells", cell, amap.shape)
    positive = np.clip(amap, 0, None)
    total = float(positive.sum())
    if total <= 0:
        return {"nucleus": 0.0, "cytoplasm": 0.0, "background": 0.0}
    in_nuc = float(positive[nuc].sum())
    in_cyto = float(positive[cell & ~nuc].sum())
    return {
        "nucleus": in_nuc / total,
        "cytoplasm": in_cyto / total,
        "background": max(0.0, 1.0 - (in_nuc + in_cyto) / total),
    }


def fill_cells(labels: Any, table: Any, column: str = "share") -> np.ndarray:
    """A float32 image of ``labels`` (Y, X) with each object filled with its ``table[column]``
    (a :func:`cell_table`); background and objects missing from the table are 0."""
    lab = np.clip(np.asarray(labels), 0, None).astype(np.int64)
    ids = np.asarray(table["label"], dtype=np.int64)
    lut = np.zeros(int(max(lab.max(initial=0), ids.max(initial=0))) + 1, np.float32)
    lut[ids] = np.asarray(table[column], dtype=np.float32)
    return lut[lab]
