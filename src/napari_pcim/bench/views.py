"""``napari-pcim bench views``: the biologist's three questions, answered on the demo plate.

The demo plate (:func:`napari_pcim.cache.ensure_demo_plate`: 96 wells, 256² fields, DMSO
controls in columns 1–2, positive controls in 11–12, ~30 % hits among the compounds) is
explained by the whole-plate runner with the product's defaults and per-channel
attribution, exactly as the Explain dock's *Explain plate* does. Then:

- **Which channel.** The mean channel importance over the hit wells' fields
  (``importance_<channel>`` of the records): the channel that carries the phenotype
  should lead.
- **Which cells.** For each hit well with ground-truth foci, the per-cell table
  (:func:`napari_pcim.cells.cell_table` over the plate's ``cells`` labels) ranks the
  cells; top-10 precision counts how many of the 10 highest-share cells hold a
  ground-truth focus (against the chance of picking 10 cells at random).
- **Which wells.** Each statistic that needs no ground truth
  (:func:`napari_pcim.plate_stats.field_statistics`) is scored as a separator of the
  plate map's hit wells from the wells it calls control (DMSO and inactive compounds),
  and from the DMSO wells alone: ROC AUC in the direction fixed in :data:`DIRECTIONS`
  (so 0.5 is chance and below 0.5 is the wrong way), and the wells
  :func:`~napari_pcim.plate_stats.flag_outliers` flags.

This is a benchmark, not a test: the figures depend on the model and the method's
defaults, and the docs quote them with the command that printed them.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from napari_pcim.vocabulary import HIT_CLASS

#: Direction in which each ground-truth-free statistic is expected to mark a hit well
#: (+1: higher in hits), from the generator's biology (:mod:`napari_pcim.synth.cells`):
#: foci are a few small bright GFP spots in the cytoplasm of responding cells, so a hit's
#: evidence is focused, in the cytoplasm rather than the nucleus, and the model is confident.
DIRECTIONS = {"concentration": -1, "nucleus_share": -1, "cytoplasm_share": +1,
              "background_share": -1, "border_share": -1, "confidence": +1}
#: Cells per well in the top-k precision.
TOP_K = 10
#: The control condition of the demo plate map.
DMSO = "DMSO"


def roc_auc(positive: Sequence[float], negative: Sequence[float]) -> float:
    """ROC AUC that ``positive`` values rank above ``negative`` ones (ties count half).

    Written out (the Mann–Whitney U statistic over all pairs) because the plate has at
    most a few hundred wells and scikit-learn is not a dependency.
    """
    pos, neg = np.asarray(positive, float)[:, None], np.asarray(negative, float)[None, :]
    if pos.size == 0 or neg.size == 0:
        return float("nan")
    return float(np.mean((pos > neg) + 0.5 * (pos == neg)))


def top_k_precision(table: Any, with_foci: set[int], k: int = TOP_K) -> tuple[float, float]:
    """(precision of the ``k`` highest-share cells, chance: the share of cells with foci)."""
    if len(table) == 0:
        return float("nan"), float("nan")
    k = min(k, len(table))
    top = table.label.head(k).tolist()
    return float(np.mean([int(lab) in with_foci for lab in top])), len(with_foci) / len(table)


def measure(
    *,
    phenotype: str = "foci",
    model: str | None = None,
    method: str = "pcim",
    columns: Sequence[int] | None = None,
    store: str | Path | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Explain the demo plate's field 0 of every well (or of ``columns``) and answer the
    three questions; returns the figures (see the module docstring).

    ``model``: a TorchScript file (default: the bundled ``<phenotype>_vgg``); ``store``:
    where the result store goes (default: a temporary folder, removed afterwards).
    """
    from napari_pcim.batch import BatchJob, ResultStore, run_plate
    from napari_pcim.batch.store import read_field_maps
    from napari_pcim.cache import ensure_demo_plate
    from napari_pcim.cells import cell_table
    from napari_pcim.classifier import bundled_model_path
    from napari_pcim.plate_io import open_plate

    log = log or (lambda _msg: None)
    plate_path = ensure_demo_plate(phenotype)
    plate = open_plate(plate_path)
    wells = [w for w in plate.wells if columns is None or int(w[1:]) in set(columns)]
    model = str(model or bundled_model_path(f"{phenotype}_vgg"))
    job = BatchJob(plate=str(plate_path), model=model, method=method, wells=wells, fields=[0],
                   per_channel=True)
    with tempfile.TemporaryDirectory(prefix="pcim-bench-views-") as tmp:
        out = Path(store) if store is not None else Path(tmp) / "views.zarr"
        log(f"explaining field 0 of {len(wells)} well(s) of {plate_path.name} with {method} …")
        t0 = time.perf_counter()
        report = run_plate(job, out)
        seconds = time.perf_counter() - t0
        results = ResultStore.open(report.store)
        records = [r for r in results.records if r["field"] == 0]
        hits = [r for r in records if r.get("expected") == HIT_CLASS]
        controls = [r for r in records if r.get("expected") == "control"]
        dmso = [r for r in controls if r.get("condition") == DMSO]

        channels = [c for c in plate.channel_names if any(f"importance_{c}" in r for r in records)]
        importance = {c: float(np.mean([r[f"importance_{c}"] for r in hits])) for c in channels} if hits else {}

        cells = []
        for rec in hits:
            labels = plate.read_labels(rec["well"], 0)
            if "cells" not in labels or "gt" not in labels or not np.any(labels["gt"]):
                continue
            maps, _names, _ = read_field_maps(report.store, rec["well"], 0)
            target = rec.get("channel_target", HIT_CLASS)
            t = rec["targets"].index(target) if target in rec["targets"] else 0
            with_foci = set(np.unique(labels["cells"][labels["gt"] > 0]).tolist()) - {0}
            precision, chance = top_k_precision(cell_table(maps[t], labels["cells"]), with_foci)
            cells.append({"well": rec["well"], "precision": precision, "chance": chance})

        def values(recs: list[dict[str, Any]], stat: str) -> list[float]:
            return [DIRECTIONS[stat] * r[stat] for r in recs if isinstance(r.get(stat), (int, float))]

        separation = {stat: roc_auc(values(hits, stat), values(controls, stat)) for stat in DIRECTIONS}
        separation_dmso = {stat: roc_auc(values(hits, stat), values(dmso, stat)) for stat in DIRECTIONS}
        outliers = results.outliers()
    precisions = [c["precision"] for c in cells]
    return {
        "plate": str(plate_path), "model": Path(model).name, "method": method,
        "options": "product defaults", "wells": len(records), "hit_wells": len(hits),
        "control_wells": len(controls), "dmso_wells": len(dmso), "seconds": round(seconds, 1),
        "channel_importance_hits": importance,
        "leading_channel": max(importance, key=importance.get) if importance else None,
        "cells": cells,
        "top10_precision_mean": float(np.mean(precisions)) if precisions else float("nan"),
        "top10_precision_min": float(np.min(precisions)) if precisions else float("nan"),
        "top10_chance_mean": float(np.mean([c["chance"] for c in cells])) if cells else float("nan"),
        "hit_vs_control_auc": separation,
        "hit_vs_dmso_auc": separation_dmso,
        "outliers": outliers,
    }


def format_report(figures: dict[str, Any]) -> str:
    """The figures of :func:`measure` as the lines ``bench views`` prints."""
    lines = [f"demo plate {Path(figures['plate']).name}, model {figures['model']}, "
             f"{figures['method']} at its {figures['options']}, per channel; field 0 of "
             f"{figures['wells']} wells ({figures['hit_wells']} hit, {figures['control_wells']} control, "
             f"of which {figures['dmso_wells']} DMSO) "
             f"in {figures['seconds']} s", "", "which channel: mean channel importance over the hit wells"]
    for c, v in sorted(figures["channel_importance_hits"].items(), key=lambda kv: -kv[1]):
        lines.append(f"  {c:10s} {v:6.3f}")
    lines += ["", f"which cells: top-{TOP_K} precision of the per-cell table over "
              f"{len(figures['cells'])} hit wells with foci",
              f"  mean {figures['top10_precision_mean']:.3f}, min {figures['top10_precision_min']:.3f} "
              f"(chance {figures['top10_chance_mean']:.3f})",
              "", "which wells: ROC AUC of hit wells against control wells (all / DMSO only), "
              "direction fixed by the generator's biology"]
    dmso = figures["hit_vs_dmso_auc"]
    for stat, auc in sorted(figures["hit_vs_control_auc"].items(), key=lambda kv: -kv[1]):
        lines.append(f"  {stat:18s} {'higher' if DIRECTIONS[stat] > 0 else 'lower':6s} in hits  "
                     f"AUC {auc:.3f} / {dmso[stat]:.3f}")
    flagged = figures["outliers"]
    lines.append(f"  outlier wells flagged: {', '.join(sorted(flagged)) if flagged else 'none'}")
    return "\n".join(lines)
