"""Markdown and JSON reports of ``napari-pcim bench quality`` (:mod:`napari_pcim.bench.quality`).

The markdown leads with what makes the numbers honest — the tuning/evaluation seed
split, the quantity each method explains, the normalisation of the maps — then the
rank-based localisation metrics, the PCIM ablations (1 step, original formulation),
PCIM against RISE on the fluorescence phenotypes, flat-map counts, the per-model tables,
the baseline check and the best-or-tied summary. :func:`write_reports` writes the JSON
rows and the markdown; a markdown file that holds the markers :data:`BEGIN` … :data:`END`
gets only the text between them replaced (how docs/benchmarks.md is regenerated).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from napari_pcim import metrics
from napari_pcim.atomic import write_text
from napari_pcim.bench.quality_core import (
    ABLATIONS,
    HELD_OUT_SEED,
    TIME_METRIC,
    TUNING_SEED,
    QualityResult,
    pcim_summary,
    winners,
)

BEGIN, END = "<!-- quality:begin -->", "<!-- quality:end -->"
#: Rank-based localisation metrics: they lead, because no read-out offset can move them.
RANK_METRICS = ("relevance_rank", "pxap", "roc_auc", "pointing_game")
#: Table order: rank-based first, then threshold and mass metrics, then fidelity.
METRIC_ORDER = (*RANK_METRICS, "best_iou", "best_dice", "relevance_mass", "deletion_auc",
                "insertion_auc", "srg")
FLUORESCENCE = ("foci", "translocation")
#: What each method explains (the quantity whose attribution it computes).
EXPLAINS = {
    "pcim": "target log-odds z_t − logsumexp(z_others) (loss='margin'; 1 normalised step from "
            "the model's random starts, smoothed by its σ)",
    "pcim_first_order": "target log-odds (1 step from the image, unsmoothed: centred Input×Gradient)",
    "pcim_20steps": "target log-odds (PCIM, 20 normalised steps of lr 0.1 from the image, "
                    "unsmoothed: the first-order map iterated)",
    "pcim_original": "−log p(target) (PCIM original: Adam, β = 0.5, mass above median)",
    "rise": "softmax p(target) (RISE weighs masks by the probability)",
    "pixelcam": "the model's own localize head (foreground probability, no target)",
}
DEFAULT_EXPLAINS = "target logit z_t (captum, output='logit')"


def _fmt(r: dict[str, Any] | None, digits: int = 3) -> str:
    if r is None or not math.isfinite(r["mean"]):
        return "n/a"
    return f"{r['mean']:.{digits}f} [{r['ci_low']:.{digits}f}, {r['ci_high']:.{digits}f}]"


def _find(rows: list[dict[str, Any]], pheno: str, arch: str, method: str,
          metric: str) -> dict[str, Any] | None:
    return next((r for r in rows if (r["phenotype"], r["arch"], r["method"], r["metric"])
                 == (pheno, arch, method, metric)), None)


def _header(result: QualityResult) -> list[str]:
    s = result.settings
    methods = [m for m in s.get("methods", []) if m]
    lines = [
        (f"**Fields.** Evaluation: newly generated treated fields, seeds "
         f"{s.get('seed', HELD_OUT_SEED)} + i (i < {s.get('n_fields', '?')}), never used for "
         "training or for choosing a default. Defaults (PCIM's, RISE's) were chosen on tuning "
         f"fields, seeds {s.get('tuning_seed', TUNING_SEED)} + i "
         "(`napari-pcim bench tune pcim`, `napari-pcim bench tune rise`)."),
        "",
        ("**Maps.** Every metric sees `max(a, 0) / max(a)`: negative attribution counts as "
         "none. Rank-based metrics (relevance rank, PxAP, ROC AUC, pointing game) lead: a "
         "monotone offset of the read-out cannot move them. Relevance mass depends on that "
         "normalisation."),
        "",
        (f"**Fidelity.** Baseline `{s.get('fidelity', {}).get('baseline', '?')}`, "
         f"{s.get('fidelity', {}).get('steps', '?')} steps; deletion, insertion and SRG "
         "(deletion least-relevant-first − most-relevant-first) on p(target)."),
        "",
        "| method | explains |", "| --- | --- |",
    ]
    lines += [f"| {m} | {EXPLAINS.get(m, DEFAULT_EXPLAINS)} |" for m in methods]
    return [*lines, ""]


def _ablation_table(result: QualityResult, models: list[tuple[str, str]]) -> list[str]:
    rows = result.rows
    variants = ["pcim", *[a for a in ABLATIONS if any(r["method"] == a for r in rows)]]
    if len(variants) == 1:
        return []
    lines = ["### PCIM ablation: default vs first order (one start, unsmoothed) vs 20 steps vs original formulation", "",
             "Mean [95% CI]; flat = maps with no positive variation (all metrics NaN).", "",
             "| model | metric | " + " | ".join(variants) + " |",
             "| --- " * (len(variants) + 2) + "|"]
    for pheno, arch in models:
        for m in (*RANK_METRICS, "deletion_auc", "srg"):
            if not any(_find(rows, pheno, arch, v, m) for v in variants):
                continue
            cells = [_fmt(_find(rows, pheno, arch, v, m), 2) for v in variants]
            lines.append(f"| {pheno} · {arch} | {m} | " + " | ".join(cells) + " |")
        flats = [str(result.flat.get(f"{pheno}/{arch}/{v}", "—")) for v in variants]
        lines.append(f"| {pheno} · {arch} | flat maps | " + " | ".join(flats) + " |")
    return [*lines, ""]


def pcim_vs_rise(result: QualityResult) -> list[tuple[str, str, str, float, float, bool]]:
    """(phenotype, arch, metric, pcim mean, rise mean, strictly better: PCIM's CI above RISE's)
    for every rank-based cell of the fluorescence phenotypes."""
    out = []
    rows = result.rows
    for pheno, arch in dict.fromkeys((r["phenotype"], r["arch"]) for r in rows):
        if pheno not in FLUORESCENCE:
            continue
        for m in RANK_METRICS:
            p, r = _find(rows, pheno, arch, "pcim", m), _find(rows, pheno, arch, "rise", m)
            if p and r:
                out.append((pheno, arch, m, p["mean"], r["mean"], p["ci_low"] > r["ci_high"]))
    return out


def to_markdown(result: QualityResult) -> str:
    """Markdown: header, ablation, PCIM vs RISE, per-model tables, times, baselines, summary."""
    rows = [r for r in result.rows if r["metric"] != TIME_METRIC]
    win = winners(result.rows)
    models = list(dict.fromkeys((r["phenotype"], r["arch"]) for r in rows))
    lines = _header(result)
    share, lost = pcim_summary(result.rows)
    n_cells = len([k for k in win if _find(rows, *k[:2], "pcim", k[2])])
    if math.isfinite(share):
        lines += [(f"**PCIM best or tied in {share:.0%} of {n_cells} (phenotype × arch × "
                   f"metric) cells** over {len(models)} models (ablation rows do not compete)."),
                  ""]
    vs = pcim_vs_rise(result)
    if vs:
        n_better = sum(v[5] for v in vs)
        lines += [("### PCIM vs RISE, rank-based cells of the fluorescence phenotypes: "
                   f"PCIM strictly better (CIs apart) in {n_better} of {len(vs)}"), "",
                  "| model | metric | PCIM | RISE | strictly better |", "| --- | --- | --- | --- | --- |"]
        lines += [f"| {p} · {a} | {m} | {pm:.3f} | {rm:.3f} | {'yes' if b else 'no'} |"
                  for p, a, m, pm, rm, b in vs]
        lines.append("")
    lines += _ablation_table(result, models)
    if result.flat:
        methods = list(dict.fromkeys(k.rsplit("/", 1)[1] for k in result.flat))
        lines += ["### Flat maps (constant after normalisation) per model and method", "",
                  "| model | " + " | ".join(methods) + " |", "| --- " * (len(methods) + 1) + "|"]
        for pheno, arch in models:
            lines.append(f"| {pheno} · {arch} | " + " | ".join(
                str(result.flat.get(f"{pheno}/{arch}/{m}", "—")) for m in methods) + " |")
        lines.append("")
    lines += [("Mean [95% percentile-bootstrap CI] over evaluation fields; **bold**: best or "
               "tied with the best (CIs overlap). ↑ higher is better, ↓ lower is better."), ""]
    names = [m for m in METRIC_ORDER if any(r["metric"] == m for r in rows)]
    for pheno, arch in models:
        cell_rows = [r for r in rows if (r["phenotype"], r["arch"]) == (pheno, arch)]
        methods = list(dict.fromkeys(r["method"] for r in cell_rows))
        n = max((r["n"] for r in cell_rows), default=0)
        lines += [f"#### {pheno} · {arch} (n = {n} fields)", "",
                  "| metric | " + " | ".join(methods) + " |", "| --- " * (len(methods) + 1) + "|"]
        for m in names:
            arrow = "↑" if metrics.METRICS[m].higher_is_better else "↓"
            cells = []
            for meth in methods:
                r = _find(cell_rows, pheno, arch, meth, m)
                text = _fmt(r) if r else "not measurable"
                cells.append(f"**{text}**" if r and meth in win.get((pheno, arch, m), set()) else text)
            lines.append(f"| {m} {arrow} | " + " | ".join(cells) + " |")
        lines.append("")
    times = [r for r in result.rows if r["metric"] == TIME_METRIC]
    if times:
        methods = list(dict.fromkeys(r["method"] for r in times))
        lines += ["#### Time per field (s, mean)", "",
                  "| phenotype · arch | " + " | ".join(methods) + " |",
                  "| --- " * (len(methods) + 1) + "|"]
        for pheno, arch in models:
            vals = [_find(times, pheno, arch, m, TIME_METRIC) for m in methods]
            lines.append(f"| {pheno} · {arch} | " + " | ".join(
                f"{r['mean']:.2f}" if r else "—" for r in vals) + " |")
        lines.append("")
    if result.baseline_check:
        labels = list(next(iter(result.baseline_check.values())))
        lines += ["#### Baseline check: mean p(treated)", "",
                  ("A fidelity baseline must score like the control fields (p < 0.5 here) "
                   "for fidelity to be measured."), "",
                  "| model | " + " | ".join(labels) + " |", "| --- " * (len(labels) + 1) + "|"]
        for model, vals in result.baseline_check.items():
            lines.append(f"| {model} | " + " | ".join(f"{vals[k]:.3f}" for k in labels) + " |")
        lines.append("")
    if lost:
        lines.append("Cells PCIM loses: " + ", ".join(f"{p}·{a}·{m}" for p, a, m in lost) + ".")
        lines.append("")
    lines += [f"- {note}" for note in result.notes]
    return "\n".join(lines).rstrip() + "\n"


def splice(text: str, block: str) -> str:
    """``text`` with everything between :data:`BEGIN` and :data:`END` replaced by ``block``."""
    a, b = text.find(BEGIN), text.find(END)
    if a < 0 or b < a:
        raise ValueError(f"no {BEGIN} … {END} markers in the markdown file")
    return text[: a + len(BEGIN)] + "\n" + block.rstrip() + "\n" + text[b:]


def write_reports(result: QualityResult, *, json_out: str | os.PathLike | None = None,
                  markdown: str | os.PathLike | None = None) -> str:
    """Write the JSON rows and/or the markdown report (atomically); return the markdown.

    An existing markdown file with the quality markers gets only its quality section
    replaced; any other path gets the whole report."""
    md = to_markdown(result)
    if json_out:  # NaN marks an undefined cell, so not the strict write_json
        write_text(json_out, json.dumps(result.rows, indent=1) + "\n")
    if markdown:
        s = result.settings
        header = (f"Command: `{s.get('command', 'napari-pcim bench quality')}` · device "
                  f"{s.get('device', '?')} · {s.get('wall_seconds', '?')} s\n\n")
        path = Path(markdown)
        old = path.read_text() if path.exists() else ""
        if BEGIN in old:  # a section of a larger document: give it its heading
            header = (f"## Quality: `{s.get('command', 'napari-pcim bench quality')}`\n\n"
                      "Generated by that command (between the quality markers); "
                      f"device {s.get('device', '?')}, {s.get('wall_seconds', '?')} s.\n\n")
        write_text(path, splice(old, header + md) if BEGIN in old else header + md)
    return md
