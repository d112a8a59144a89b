"""Choosing RISE's defaults on the TUNING fields (never the evaluation fields).

``napari-pcim bench tune rise configs`` compares mask settings (grid, p,
SLIC) by rank-based localisation (PxAP, relevance rank, ROC AUC, pointing game) on
treated tuning fields (:data:`napari_pcim.bench.quality.TUNING_SEED`) of each
phenotype; ``... stopping`` runs the chosen defaults to the cap with the convergence
check recording every round, and reports, per tolerance, the masks used and whether
each metric's mean at the stopping point lies inside the 95 % bootstrap CI of the
full-cap map's (``outside_ci`` names the metrics that are not). By default ``stopping``
runs every bundled model; ``--set grid=8 --set p=0.5`` tries other RISE options. The
figures go to stdout as JSON lines, then (``stopping``) a Markdown table.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import numpy as np

RANK_METRICS = ("pxap", "relevance_rank", "roc_auc", "pointing_game")
CONFIGS: dict[str, dict[str, Any]] = {
    "grid8 p0.5": {"grid": 8, "p": 0.5},
    "grid16 p0.1": {"grid": 16, "p": 0.1},
    "slic200 p0.1": {"segmentation": "slic", "n_segments": 200, "p": 0.1},
}
TOLERANCES = (0.01, 0.02, 0.05, 0.1, 0.2)


def _scores(amap: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    from napari_pcim import metrics

    return {"pxap": metrics.pxap(amap, gt), "relevance_rank": metrics.relevance_rank_accuracy(amap, gt),
            "roc_auc": metrics.roc_auc(amap, gt), "pointing_game": metrics.pointing_game(amap, gt)}


def rounds(clf: Any, raw: np.ndarray, target: int, options: dict[str, Any], seed: int
           ) -> tuple[list[int], list[np.ndarray], list[float], dict[str, float]]:
    """RISE on one field at the classifier's input size: (masks, maps, ratios) per round + stats."""
    import torch

    from napari_pcim.baseline_images import make_baseline
    from napari_pcim.explainers.grid_masks import GridMasks
    from napari_pcim.explainers.regions import RegionMasks, slic_labels
    from napari_pcim.explainers.rise import RISEOptions, rise_attribute

    opts = RISEOptions(**options)
    x = clf.prepare(raw[None])
    gen = torch.Generator().manual_seed(seed)
    if opts.segmentation == "slic":
        lab = torch.from_numpy(slic_labels(x[0].cpu().numpy(), opts.n_segments))[None]
        masks = RegionMasks(lab, opts.p, opts.region_sigma, gen)
    else:
        masks = GridMasks(tuple(x.shape[-2:]), opts.grid, opts.p, gen, x.device)
    base = make_baseline(x, opts.baseline, raw_zero=clf.raw_zero(x.device), blur_sigma=opts.blur_sigma)
    made: list[int] = []
    maps: list[np.ndarray] = []
    ratios: list[float] = []

    def on_round(n: int, m: Any, r: Any) -> None:
        made.append(n)
        maps.append(m[0, 0].cpu().numpy().copy())
        ratios.append(float(r.max()))

    stats: dict[str, float] = {}
    final = rise_attribute(clf.module, x, torch.tensor([[target]]), options=opts, masks=masks,
                           baselines=base, on_round=on_round, stats=stats)
    made.append(opts.n_masks)
    maps.append(final[0, 0].cpu().numpy())
    ratios.append(float("nan"))
    return made, maps, ratios, stats


def run(stage: str, models: list[str], n_fields: int, cap: int, options: dict[str, Any],
        out: Any = None, label: str = "default") -> list[dict[str, Any]]:
    """One tuning stage; returns (and prints to ``out``, default stdout) one row per model × setting."""
    out = out or sys.stdout
    from napari_pcim import synth
    from napari_pcim.bench.quality import TUNING_SEED, bootstrap_ci
    from napari_pcim.classifier import bundled_model_path, load_classifier

    rows = []
    for name in models:
        clf = load_classifier(bundled_model_path(name), device="cpu")
        phenotype = name.split("_")[0]
        side = int(clf.meta.input_size[0])
        target = list(clf.meta.classes).index("treated")
        fields = [synth.generate_field(phenotype, True, size=side, seed=TUNING_SEED + i)
                  for i in range(n_fields)]
        configs = CONFIGS if stage == "configs" else {label: {}}
        for setting, cfg in configs.items():
            t0 = time.perf_counter()
            runs = [rounds(clf, f.image, target, {**options, **cfg, "n_masks": cap}, TUNING_SEED + i)
                    for i, f in enumerate(fields)]
            secs = (time.perf_counter() - t0) / n_fields
            gts = [f.labels["gt"] > 0 for f in fields]
            full = [_scores(r[1][-1], gt) for r, gt in zip(runs, gts)]
            row: dict[str, Any] = {"model": name, "setting": setting, "cap": cap, "fields": n_fields,
                                   "seconds_per_field": round(secs, 2)}
            for m in RANK_METRICS:
                mean, lo, hi = bootstrap_ci([s[m] for s in full], n_boot=2000, seed=TUNING_SEED)
                row[m] = [round(mean, 3), round(lo, 3), round(hi, 3)]
            if stage == "stopping":
                for tol in TOLERANCES:
                    stops = [next((k for k, r in enumerate(rr[2]) if r < tol), len(rr[0]) - 1) for rr in runs]
                    used = [rr[0][k] for rr, k in zip(runs, stops)]
                    at = [_scores(rr[1][k], gt) for rr, k, gt in zip(runs, stops, gts)]
                    means = {m: float(np.nanmean([s[m] for s in at])) for m in RANK_METRICS}
                    outside = [m for m in RANK_METRICS if not row[m][1] <= means[m] <= row[m][2]]
                    row[f"tol {tol}"] = {
                        "masks_mean": round(float(np.mean(used)), 1), "masks_max": int(max(used)),
                        "masks_pct": round(100 * float(np.mean(used)) / cap, 1),
                        "within_ci": not outside, "outside_ci": outside,
                        **{m: round(v, 3) for m, v in means.items()}}
            rows.append(row)
            print(json.dumps(row), file=out, flush=True)
    return rows


def stopping_table(rows: list[dict[str, Any]]) -> str:
    """Markdown: per model, the cap map's PxAP [CI] and, per tolerance, masks used and CI check."""
    tols = [k for k in rows[0] if k.startswith("tol ")] if rows else []
    lines = ["| model | setting | N = cap map: PxAP [CI] | " + " | ".join(tols) + " |",
             "| --- | --- | --- | " + " | ".join("---" for _ in tols) + " |"]
    for r in rows:
        cells = []
        for t in tols:
            c = r[t]
            check = "within CI" if c["within_ci"] else "outside CI: " + ", ".join(c["outside_ci"])
            cells.append(f"{c['masks_mean']:.0f} masks ({c['masks_pct']:.0f}%), PxAP {c['pxap']:.3f}, {check}")
        pxap = r["pxap"]
        lines.append(f"| {r['model']} | {r['setting']} | {pxap[0]:.3f} [{pxap[1]:.3f}, {pxap[2]:.3f}] | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines)


def tune(stage: str, models: list[str] | None, n_fields: int, cap: int | None,
         options: dict[str, Any]) -> list[dict[str, Any]]:
    """``napari-pcim bench tune rise {configs,stopping}``: run a stage on one torch thread
    (a shared 2-core machine: one core per tuning job) and print its rows and table."""
    import torch

    from napari_pcim.classifier import bundled_models

    torch.set_num_threads(1)
    options = {"tolerance": 0.0, **options}
    if stage == "configs":
        return run("configs", models or ["foci_vgg", "translocation_vgg", "worms_vgg"], n_fields,
                   cap or 1000, options)
    label = " ".join(f"{k}={v}" for k, v in options.items() if k != "tolerance") or "default"
    rows = run("stopping", models or sorted(bundled_models()), n_fields, cap or 4000, options, label=label)
    print(stopping_table(rows))
    return rows
