"""Plate overview without ground truth: per-field explanation statistics and outlier flags.

:func:`field_statistics` describes where one field's positive attribution sits —
in nuclei, cytoplasm or background, in a band along the field's border, how
concentrated it is, which channel dominates — and what the classifier predicted,
all without ground truth. :func:`flag_outliers` marks fields whose explanation
looks like a shortcut or an artefact for their predicted class (see its docstring
for the rule). Both work on plain dicts, the records of a whole-plate result store.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["BORDER_FRACTION", "STATISTICS", "field_statistics", "flag_outliers", "span"]

#: Width of the border band, as a fraction of the field's side (on each side).
BORDER_FRACTION = 0.05
#: Numeric statistics a well map can be coloured by (all in [0, 1]), with a short meaning.
STATISTICS: dict[str, str] = {
    "nucleus_share": "share of the positive attribution in nuclei",
    "cytoplasm_share": "share of the positive attribution in cytoplasm",
    "object_share": "share of the positive attribution inside objects (cells, worms)",
    "background_share": "share of the positive attribution on background",
    "border_share": f"share of the positive attribution in the {BORDER_FRACTION:.0%} border band",
    "concentration": "fraction of the field holding half the attribution (small: focused)",
    "dominant_share": "channel importance of the dominant channel",
    "confidence": "probability of the predicted class",
}
#: flag_outliers: robust z-score above which a field is an outlier within its class.
Z_LIMIT = 3.5
#: flag_outliers: border share above which a field is flagged whatever its class does.
BORDER_LIMIT = 0.5
#: flag_outliers: fewest fields of a predicted class for the z-score rule.
MIN_GROUP = 5
#: flag_outliers: smallest spread (scaled MAD) used in the z-score, so tiny differences
#: between near-identical fields are never flagged.
MIN_SPREAD = 0.1


def _finite(name: str, value: Any, ndim: int) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {arr.shape}")
    bad = int((~np.isfinite(arr)).sum())
    if bad:
        raise ValueError(f"{name} has {bad} non-finite value(s); refusing to summarise it")
    return arr


def _border_band(shape: tuple[int, int]) -> np.ndarray:
    band = np.zeros(shape, bool)
    by, bx = (max(1, round(BORDER_FRACTION * s)) for s in shape)
    band[:by], band[-by:], band[:, :bx], band[:, -bx:] = True, True, True, True
    return band


def _concentration(positive: np.ndarray, total: float) -> float:
    """Fraction of the pixels that hold half of ``total`` (largest values first); 1 when empty."""
    if total <= 0:
        return 1.0
    ranked = np.sort(positive.ravel())[::-1]
    n = int(np.searchsorted(np.cumsum(ranked), 0.5 * total)) + 1
    return min(n, ranked.size) / ranked.size


def field_statistics(
    attribution_map: Any,
    labels: Mapping[str, Any],
    probabilities: Any,
    classes: Sequence[str],
    channel_importance: Any = None,
    channel_names: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Ground-truth-free statistics of one field's attribution map (Y, X).

    ``labels``: the field's label images ``{name: (Y, X)}``. With ``nuclei`` and
    ``cells`` the positive attribution is split into ``nucleus_share``,
    ``cytoplasm_share`` and ``background_share`` (:func:`napari_pcim.cells.compartment_shares`);
    with one other instance label image (``gt`` is ignored) into ``object_share`` and
    ``background_share``; without labels no share is given. Always: ``border_share``
    (in the :data:`BORDER_FRACTION` band along the edges), ``concentration`` (fraction
    of the field's area holding 50 % of the positive attribution), ``predicted`` and
    ``confidence`` (the largest of ``probabilities`` (K,)). With ``channel_importance``
    (C,) and ``channel_names``: ``dominant_channel`` and ``dominant_share``.
    A map without positive attribution has shares 0 and concentration 1.
    Non-finite input raises ``ValueError``.
    """
    from napari_pcim.cells import compartment_shares

    amap = _finite("the attribution map", attribution_map, 2)
    probs = _finite("the class probabilities", probabilities, 1)
    if len(probs) != len(classes):
        raise ValueError(f"{len(probs)} class probabilities for {len(classes)} classes {list(classes)}")
    positive = np.clip(amap, 0, None)
    total = float(positive.sum())
    stats: dict[str, Any] = {}
    instance = {k: np.asarray(v) for k, v in labels.items() if k != "gt"}
    for name, lab in instance.items():
        if lab.shape != amap.shape:
            raise ValueError(f"label image {name!r} has shape {lab.shape}; expected {amap.shape} "
                             "like the attribution map")
    if "nuclei" in instance and "cells" in instance:
        shares = compartment_shares(amap, instance["nuclei"], instance["cells"])
        stats.update({f"{k}_share": v for k, v in shares.items()})
    elif instance:
        objects = np.any([lab > 0 for lab in instance.values()], axis=0)
        inside = float(positive[objects].sum()) / total if total > 0 else 0.0
        stats.update(object_share=inside, background_share=1.0 - inside if total > 0 else 0.0)
    stats["border_share"] = float(positive[_border_band(amap.shape)].sum()) / total if total > 0 else 0.0
    stats["concentration"] = _concentration(positive, total)
    best = int(np.argmax(probs))
    stats.update(predicted=str(classes[best]), confidence=float(probs[best]))
    if channel_importance is not None:
        imp = _finite("the channel importance", channel_importance, 1)
        names = list(channel_names) if channel_names is not None else [str(i) for i in range(len(imp))]
        if len(names) != len(imp):
            raise ValueError(f"{len(imp)} channel importances for {len(names)} channel names {names}")
        top = int(np.argmax(imp))
        stats.update(dominant_channel=names[top], dominant_share=float(imp[top]))
    return stats


def _robust_z(values: np.ndarray) -> np.ndarray:
    median = float(np.median(values))
    spread = max(1.4826 * float(np.median(np.abs(values - median))), MIN_SPREAD)
    return (values - median) / spread


def flag_outliers(records: Sequence[Mapping[str, Any]]) -> list[tuple[str, int, str]]:
    """Fields whose explanation looks like a shortcut or an artefact: ``(well, field, reason)``.

    Two rules, on the records' ``border_share`` and ``background_share``:

    - absolute: ``border_share`` > :data:`BORDER_LIMIT` (a uniform map puts about
      19 % there), whatever the other fields do;
    - relative: within each ``predicted`` class of at least :data:`MIN_GROUP` fields,
      a robust z-score (median and 1.4826·MAD, the spread floored at :data:`MIN_SPREAD`)
      above :data:`Z_LIMIT`, i.e. far more attribution on the border or the background
      than the class's other fields.

    Records lacking a statistic are skipped for that statistic. Order: the records'.
    """
    reasons: dict[int, list[str]] = {}
    for i, rec in enumerate(records):
        border = rec.get("border_share")
        if border is not None and border > BORDER_LIMIT:
            reasons.setdefault(i, []).append(f"{border:.0%} of the attribution at the field border")
    groups: dict[str, list[int]] = {}
    for i, rec in enumerate(records):
        groups.setdefault(str(rec.get("predicted", "")), []).append(i)
    for cls, members in groups.items():
        for key, where in (("border_share", "field border"), ("background_share", "background")):
            idx = [i for i in members if records[i].get(key) is not None]
            if len(idx) < MIN_GROUP:
                continue
            z = _robust_z(np.array([float(records[i][key]) for i in idx]))
            for i, zi in zip(idx, z):
                if zi > Z_LIMIT and not (key == "border_share" and i in reasons):
                    reasons.setdefault(i, []).append(
                        f"{float(records[i][key]):.0%} of the attribution on the {where}, "
                        f"unusual for {cls} fields (robust z {zi:.1f})")
    return [(str(records[i]["well"]), int(records[i]["field"]), "; ".join(r))
            for i, r in sorted(reasons.items())]


def span(values: Mapping[str, float]) -> tuple[dict[str, float], float, float]:
    """``values`` rescaled to [0, 1] over their own range, with that range ``(low, high)``.

    A plate's wells often differ by a few hundredths of a share; coloured on a fixed
    0…1 scale they would all look alike, so the well map colours a statistic over the
    range the plate spans (the legend prints it). All equal: every well at 0.5.
    """
    if not values:
        return {}, 0.0, 0.0
    low, high = min(values.values()), max(values.values())
    if high <= low:
        return {w: 0.5 for w in values}, low, high
    return {w: (v - low) / (high - low) for w, v in values.items()}, low, high
