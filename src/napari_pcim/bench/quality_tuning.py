"""PCIM's defaults, chosen on the *tuning* fields only (``TUNING_SEED``, never the evaluation seed).

``napari-pcim bench tune pcim [--fields N] [--models a b]`` explains
``N`` tuning fields per bundled model with each variant of :data:`VARIANTS` (the
original formulation, Adam on the margin, normalised steps on the margin at several
step sizes, budgets and step counts) and prints the mean of the rank-based
localisation metrics (relevance rank, PxAP, ROC AUC, pointing game), the number of
flat maps and the seconds per field. The defaults in ``PCIMOptions`` are the variant
with the best mean rank score; docs/methods.md records the table it printed.

``--grid`` runs :data:`GRID_VARIANTS` instead (random starts × start noise × start
scale × the map's Gaussian σ) and applies :func:`choose_grid`'s rule: among the variants
whose rank mean is within :data:`TIE` of the best, the cheapest (fewest starts), then
the least smoothing, then the least noise, then the least start scale; over the
models' mean (→ the ``PCIMOptions`` defaults) and per model (→ the options each bundled
model carries in full in its metadata ``explainer_options``:
:data:`napari_pcim.training.classifier_training.RECOMMENDED`).
"""

from __future__ import annotations

import math
import time
import warnings
from typing import Any

import numpy as np

from napari_pcim import metrics
from napari_pcim.bench.quality import PCIM_ORIGINAL, TARGET_CLASS, TUNING_SEED, bundled_specs

RANK_METRICS = ("relevance_rank", "pxap", "roc_auc", "pointing_game")
#: Rank means closer than this to the best count as tied; the simpler variant then wins.
TIE = 0.01
VARIANTS: dict[str, dict[str, Any]] = {
    "original": PCIM_ORIGINAL,
    "adam+margin β=1": {"loss": "margin", "update": "adam", "budget": 1.0},
    "norm+margin β=0.5": {"budget": 0.5},
    "norm+margin 1 step": {"steps": 1},
    "norm+margin lr=0.03": {"lr": 0.03},
    "norm+margin lr=0.1": {"lr": 0.1},
    "norm+margin lr=0.3": {"lr": 0.3},
}
SMOOTH_SIGMAS = (0.0, 0.5, 1.0, 1.5, 2.0)
#: (starts, start_noise): one start from the image, or 8 to 64 random ones.
STARTS = ((1, 0.0), (8, 0.25), (8, 0.5), (16, 0.25), (16, 0.5), (32, 0.5), (32, 0.75),
          (64, 0.5), (64, 0.75))
#: start_scale: random contrast per pixel (0), or smooth over about a focus (2) or a nucleus (4).
START_SCALES = (0.0, 2.0, 4.0)
GRID_VARIANTS: dict[str, dict[str, Any]] = {
    f"starts {n} noise {z:g} scale {c:g} σ={s:g}": {
        "starts": n, "start_noise": z, "start_scale": c, "smooth": s}
    for n, z in STARTS for c in (START_SCALES if z > 0 else (0.0,)) for s in SMOOTH_SIGMAS}


def _pcim_map(cache: dict[Any, tuple[np.ndarray, float]], clf: Any, f: Any, index: int,
              target: int, opts: dict[str, Any]) -> tuple[np.ndarray, float]:
    """(map, seconds) of PCIM with ``opts`` on tuning field number ``index``.

    Variants that differ only in ``smooth`` share one unsmoothed map, blurred here: the
    blur is linear and PCIM applies it after the read-out, so on these one-tile fields
    it is the same map (to float rounding) for a fifth of the grid's cost. The seconds
    are the unsmoothed map's plus the blur's: the cost of running the variant alone."""
    import torch

    from napari_pcim.baseline_images import gaussian_blur
    from napari_pcim.explainers import explain

    smooth = opts.get("smooth")
    rest = {k: v for k, v in opts.items() if k != "smooth"}
    key = (index, tuple(sorted(rest.items())), smooth is None)
    if key not in cache:
        t0 = time.perf_counter()
        run = opts if smooth is None else {**rest, "smooth": 0.0}
        amap = explain(clf, f.image, method="pcim", target=target, device="cpu", **run).maps[0, 0]
        cache[key] = (np.asarray(amap, dtype=np.float64), time.perf_counter() - t0)
    a, seconds = cache[key]
    if smooth:
        t0 = time.perf_counter()
        a = gaussian_blur(torch.from_numpy(a)[None, None], smooth)[0, 0].numpy()
        seconds += time.perf_counter() - t0
    return a, seconds


def tune(n_fields: int = 8, models: tuple[str, ...] | None = None,
         variants: dict[str, dict[str, Any]] | None = None,
         fidelity: bool = False) -> list[dict[str, Any]]:
    """One row per (model, variant): mean rank metrics, flat maps, seconds per field
    (and deletion AUC and SRG with the benchmark's fidelity baseline, with ``fidelity``)."""
    from napari_pcim import synth
    from napari_pcim.bench.quality import QUICK_FIDELITY

    specs, _ = bundled_specs("cpu")
    rows = []
    extra = " | deletion_auc | srg" if fidelity else ""
    print("model | variant | flat | s/field | " + " | ".join(RANK_METRICS) + extra + " | rank mean")
    for spec in specs:
        name = f"{spec.phenotype}_{spec.arch}"
        if models and name not in models:
            continue
        clf = spec.classifier
        target = clf.meta.classes.index(TARGET_CLASS)
        side = int(clf.meta.input_size[0])
        fields = [synth.generate_field(spec.phenotype, True, size=side, seed=TUNING_SEED + i)
                  for i in range(n_fields)]
        cache: dict[Any, tuple[np.ndarray, float]] = {}
        for label, opts in (variants or VARIANTS).items():
            names = (*RANK_METRICS, "deletion_auc", "srg") if fidelity else RANK_METRICS
            scores: dict[str, list[float]] = {m: [] for m in names}
            flat, seconds = 0, 0.0
            for i, f in enumerate(fields):
                a, s = _pcim_map(cache, clf, f, i, target, opts)
                seconds += s
                flat += int(metrics.normalize_map(a).max() == metrics.normalize_map(a).min())
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    extra = ({"classifier": clf, "field": f.image, "target": target,
                              **QUICK_FIDELITY} if fidelity else {})
                    vals = metrics.evaluate_map(a, f.labels["gt"] > 0, **extra)
                for m in names:  # a flat map scores 0, as in the recount
                    scores[m].append(vals[m] if math.isfinite(vals[m]) else 0.0)
            row = {"model": name, "variant": label, "flat": flat,
                   "s/field": seconds / n_fields,
                   **{m: float(np.mean(v)) for m, v in scores.items()}}
            row["rank mean"] = float(np.mean([row[m] for m in RANK_METRICS]))
            rows.append(row)
            print(" | ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in row.values()),
                  flush=True)
    return rows


def choose_grid(rows: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """(overall options, {model: options}) from :func:`tune`'s rows of :data:`GRID_VARIANTS`:
    of the variants within :data:`TIE` of the best rank mean, the one with the fewest
    starts, then the smallest σ, then the least noise, then the least start scale; over
    the models' mean and per model."""
    rows = [r for r in rows if r["variant"] in GRID_VARIANTS]

    def pick(scores: dict[str, float]) -> dict[str, Any]:
        best = max(scores.values())
        near = [GRID_VARIANTS[label] for label, v in scores.items() if v >= best - TIE]
        return dict(min(near, key=lambda o: (o["starts"], o["smooth"], o["start_noise"],
                                             o["start_scale"])))

    models = list(dict.fromkeys(r["model"] for r in rows))
    per_model = {m: pick({r["variant"]: r["rank mean"] for r in rows if r["model"] == m})
                 for m in models}
    labels = dict.fromkeys(r["variant"] for r in rows)
    overall = pick({label: float(np.mean([r["rank mean"] for r in rows if r["variant"] == label]))
                    for label in labels})
    return overall, per_model


def print_summary(rows: list[dict[str, Any]]) -> None:
    """Each variant's means over the models (after :func:`tune`'s per-model rows)."""
    print("\nmean over models:")
    for label in dict.fromkeys(r["variant"] for r in rows):
        sel = [r for r in rows if r["variant"] == label]
        print(f"{label:30s} rank mean {np.mean([r['rank mean'] for r in sel]):.3f}  "
              f"pxap {np.mean([r['pxap'] for r in sel]):.3f}  flat {sum(r['flat'] for r in sel)}  "
              f"s/field {np.mean([r['s/field'] for r in sel]):.2f}")
