"""``napari-pcim bench quality``: localisation and fidelity of every attribution method.

For each bundled classifier (``<phenotype>_<arch>``), newly generated *treated*
fields from a held-out seed (never used for training) are explained with every
registered method (``explain()``: PCIM, RISE, PixelCAM, the captum methods) that
can explain that model — PixelCAM needs a ``localize`` head, Grad-CAM a plain
``nn.Module`` — for the target "treated"; a method that cannot is skipped with a note. Every map is scored with every
metric of :mod:`napari_pcim.metrics` against the field's ground-truth mask.

Per (phenotype, arch, method, metric) cell the table gives the mean and a 95%
percentile-bootstrap confidence interval over fields; per (phenotype, arch,
metric) the winner is the best mean, and every method whose CI overlaps the
winner's is tied with it. The summary gives PCIM's "best or tied" share of the
(phenotype × arch × metric) cells and the cells it loses. See docs/metrics.md.

Honesty rules: method defaults are chosen on ``TUNING_SEED`` fields
(:mod:`napari_pcim.bench.quality_tuning`); the tables use ``HELD_OUT_SEED`` fields.
Every method runs at its product defaults (``FULL_OPTIONS`` only makes the captum
comparison methods' costs explicit). ``ABLATIONS`` (PCIM at 1 step, PCIM's original
formulation) are reported beside the methods but do not compete for "best". A model's
fidelity cells are computed only when its fidelity baseline is classified as not-target
(``p < 0.5``, :func:`baseline_check`); otherwise they are "not measurable".

Entry points: :func:`run_benchmark` (the core, used by the test), :func:`to_markdown`,
:func:`pcim_summary`, :func:`write_reports`; the CLI handler is
:func:`napari_pcim.cli.bench.bench_quality`.
"""

from __future__ import annotations

import math
import os
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from napari_pcim import metrics
from napari_pcim.bench.quality_core import (  # noqa: F401  (re-exported: the benchmark's API)
    ABLATIONS,
    HELD_OUT_SEED,
    PCIM_ORIGINAL,
    TARGET_CLASS,
    TIME_METRIC,
    TUNING_SEED,
    ModelSpec,
    QualityResult,
    bootstrap_ci,
    pcim_summary,
    winners,
)

LABEL_REGION_METHODS = ("feature_ablation",)

#: Options per method in a full run and in ``--quick``. PCIM and RISE run at their
#: product defaults (PCIMOptions, RISEOptions) in both: never overridden here.
FULL_OPTIONS: dict[str, dict[str, Any]] = {
    "integrated_gradients": {"n_steps": 32},
    "occlusion": {"window": 16, "stride": 8},
}
QUICK_OPTIONS: dict[str, dict[str, Any]] = {
    "integrated_gradients": {"n_steps": 8},
    "occlusion": {"window": 32, "stride": 32},
}
# 64 steps change 1/64 of the pixels per step: the phenotype covers ~1-3 % of a foci
# field, so coarser steps saturate the insertion curve at the first step for any map.
# The background baseline (objects inpainted from their surroundings) removes the
# phenotype better than the median (see the baseline check table).
FULL_FIDELITY = {"steps": 64, "baseline": "background"}
QUICK_FIDELITY = {"steps": 16, "baseline": "background"}
#: A fidelity baseline must be classified below this p(target) to measure fidelity.
MEASURABLE_P = 0.5
#: Baselines whose p(target) the benchmark reports (kind, make_baseline keyword arguments).
BASELINE_CHECK: tuple[tuple[str, dict[str, Any]], ...] = (
    ("median", {}), ("zero", {}), ("mean", {}), ("blur σ=1", {"blur_sigma": 1.0}),
    ("blur σ=2", {"blur_sigma": 2.0}), ("blur σ=side/8", {}), ("background", {}),
)


# ------------------------------------------------------------------------------- core


def _attribution(
    method: str,
    spec: ModelSpec,
    raw: np.ndarray,
    regions: np.ndarray,
    target: int,
    options: dict[str, Any],
    seed: int,
    device: str,
) -> np.ndarray:
    """One (H, W) map of ``method`` for one raw field, through ``explain()``."""
    from napari_pcim.explainers import explain

    if method in ABLATIONS:
        method, extra = ABLATIONS[method]
        options = {**extra, **options}
    if method in LABEL_REGION_METHODS:
        options = {"regions": regions, **options}
    att = explain(spec.classifier, raw, method=method, target=target, device=device, seed=seed,
                  **options)
    return np.asarray(att.maps[0, 0], dtype=np.float64)


def _regions(labels: dict[str, np.ndarray]) -> np.ndarray:
    """Region label image for feature ablation: cells, else worms, else nuclei."""
    for name in ("cells", "worms", "nuclei"):
        if name in labels:
            return np.asarray(labels[name])
    raise ValueError(f"synthetic field has no region labels; got {sorted(labels)}")


def baseline_check(
    spec: ModelSpec, treated: np.ndarray, control: np.ndarray
) -> dict[str, float]:
    """Mean p(treated) of treated fields, control fields, and of each baseline of the
    treated fields (``BASELINE_CHECK``): a fidelity baseline should look like control."""
    import torch

    clf = spec.classifier
    t = clf.meta.classes.index(TARGET_CLASS)

    def p(x: torch.Tensor) -> float:
        return float(torch.softmax(clf.field_logits(x), dim=1)[:, t].mean())

    from napari_pcim.baseline_images import make_baseline

    with torch.inference_mode():
        x = clf.prepare(treated)
        out = {"treated fields": p(x), "control fields": p(clf.prepare(control))}
        for label, kw in BASELINE_CHECK:
            kind = label.split()[0]
            extra = {"raw_zero": clf.raw_zero(x.device)} if kind == "zero" else {}
            out[label] = p(make_baseline(x, kind, **kw, **extra))
    return out


def run_benchmark(
    models: Sequence[ModelSpec],
    *,
    methods: Sequence[str] | None = None,
    n_fields: int = 50,
    size: int | None = None,
    seed: int = HELD_OUT_SEED,
    method_options: dict[str, dict[str, Any]] | None = None,
    fidelity: dict[str, Any] | None = None,
    device: str = "cpu",
    n_boot: int = 2000,
    log: Callable[[str], None] | None = None,
) -> QualityResult:
    """Explain ``n_fields`` held-out treated fields per model with every method; score them.

    Returns one row per (model, method, metric) — keys ``phenotype, arch, method,
    metric, mean, ci_low, ci_high, n, higher_is_better`` — plus a
    ``seconds_per_field`` row per (model, method) (the first field, which pays
    one-off costs, is left out of it when there are more). ``n`` counts the
    fields whose value is finite. ``methods`` default to every registered method; a
    method that cannot explain a model (``unavailable_reason``) is skipped with a note.
    ``size`` defaults to each classifier's input height (fields at the input size).
    """
    from napari_pcim import synth
    from napari_pcim.explainers import COMPARISON_METHODS, METHODS, unavailable_reason

    known = (*METHODS, *COMPARISON_METHODS)
    methods = tuple(methods) if methods is not None else (*known, *ABLATIONS)
    unknown = set(methods) - set(known) - set(ABLATIONS)
    if unknown:
        raise ValueError(f"unknown method(s) {sorted(unknown)}; expected some of {known}")
    opts = method_options if method_options is not None else FULL_OPTIONS
    fid = fidelity if fidelity is not None else FULL_FIDELITY
    say = log or (lambda _msg: None)
    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    checks: dict[str, dict[str, float]] = {}
    flat: dict[str, int] = {}
    fid_label = next((label for label, kw in BASELINE_CHECK
                      if label.split()[0] == fid.get("baseline") and not kw), None)
    for spec in models:
        clf = spec.classifier
        if TARGET_CLASS not in clf.meta.classes:
            raise ValueError(
                f"{spec.phenotype}_{spec.arch}: no class {TARGET_CLASS!r} in {clf.meta.classes}"
            )
        target = clf.meta.classes.index(TARGET_CLASS)
        side = size if size is not None else int(clf.meta.input_size[0])
        fields = [
            synth.generate_field(spec.phenotype, True, size=side, seed=seed + i)
            for i in range(n_fields)
        ]
        controls = np.stack([
            synth.generate_field(spec.phenotype, False, size=side, seed=seed + i).image
            for i in range(n_fields)
        ])
        key = f"{spec.phenotype}/{spec.arch}"
        checks[key] = baseline_check(spec, np.stack([f.image for f in fields]), controls)
        p_base = checks[key].get(fid_label, math.nan) if fid_label else math.nan
        measurable = not (p_base >= MEASURABLE_P)  # unchecked baselines count as measurable
        if not measurable:
            notes.append(
                f"{key}: fidelity not measurable: the fidelity baseline {fid.get('baseline')!r} "
                f"is still classified treated (mean p = {p_base:.2f} ≥ {MEASURABLE_P}), so "
                "removing pixels does not remove what the model sees; fidelity cells left out")
        for method in methods:
            reason = unavailable_reason(ABLATIONS.get(method, (method,))[0], clf)
            if reason:
                notes.append(f"{spec.phenotype}/{spec.arch}: {method} skipped: {reason}")
                continue
            scores: dict[str, list[float]] = {
                m: [] for m, info in metrics.METRICS.items()
                if measurable or info.kind != "fidelity"}
            seconds: list[float] = []
            n_flat = 0
            for i, f in enumerate(fields):
                t0 = time.perf_counter()
                amap = _attribution(
                    method, spec, f.image, _regions(f.labels), target,
                    dict(opts.get(method, {})), seed + i, device,
                )
                seconds.append(time.perf_counter() - t0)
                norm = metrics.normalize_map(amap)
                n_flat += int(norm.max() == norm.min())
                with warnings.catch_warnings():
                    # Degenerate maps give NaN (counted below), not one warning per metric.
                    warnings.simplefilter("ignore", RuntimeWarning)
                    fidelity_kw = ({"classifier": clf, "field": f.image, "target": target,
                                    "seed": seed + i, **fid} if measurable else {})
                    values = metrics.evaluate_map(amap, f.labels["gt"] > 0, **fidelity_kw)
                for name, value in values.items():
                    scores[name].append(value)
            flat[f"{key}/{method}"] = n_flat
            say(
                f"{spec.phenotype}/{spec.arch}/{method}: {n_fields} fields, "
                f"{np.mean(seconds[1:] or seconds):.2f} s/field"
            )
            n_nan = max(sum(not math.isfinite(v) for v in vals) for vals in scores.values())
            if n_nan:
                notes.append(f"{spec.phenotype}/{spec.arch}/{method}: {n_nan} of {n_fields} "
                             "fields gave an undefined (NaN) metric (constant or empty map)")
            for name, values in scores.items():
                mean, low, high = bootstrap_ci(values, n_boot=n_boot, seed=seed)
                rows.append(_row(spec, method, name, mean, low, high, values,
                                 metrics.METRICS[name].higher_is_better))
            # The first field pays one-off costs (imports, TorchScript profiling runs).
            timed = seconds[1:] if len(seconds) > 1 else seconds
            mean, low, high = bootstrap_ci(timed, n_boot=n_boot, seed=seed)
            rows.append(_row(spec, method, TIME_METRIC, mean, low, high, timed, False))
    settings = {
        "methods": list(methods), "n_fields": n_fields, "size": size or "input size",
        "seed": seed, "tuning_seed": TUNING_SEED,
        "ablations": {k: {"method": m, "options": o} for k, (m, o) in ABLATIONS.items()},
        "method_options": opts, "fidelity": fid, "device": device, "n_boot": n_boot,
        "ci": "95% percentile bootstrap of the mean over fields",
    }
    return QualityResult(rows=rows, notes=notes, settings=settings, baseline_check=checks,
                         flat=flat)


def _row(spec: ModelSpec, method: str, metric: str, mean: float, low: float, high: float,
         values: Sequence[float], higher: bool) -> dict[str, Any]:
    return {
        "phenotype": spec.phenotype, "arch": spec.arch, "method": method, "metric": metric,
        "mean": mean, "ci_low": low, "ci_high": high,
        "n": int(sum(math.isfinite(v) for v in values)), "higher_is_better": bool(higher),
    }


# ----------------------------------------------------------------------------- report


def to_markdown(result: QualityResult) -> str:
    """The markdown report (see :func:`napari_pcim.bench.quality_report.to_markdown`)."""
    from napari_pcim.bench.quality_report import to_markdown as _to_markdown

    return _to_markdown(result)


def write_reports(result: QualityResult, *, json_out: str | os.PathLike | None = None,
                  markdown: str | os.PathLike | None = None) -> str:
    """JSON rows and/or markdown (see :func:`napari_pcim.bench.quality_report.write_reports`)."""
    from napari_pcim.bench.quality_report import write_reports as _write_reports

    return _write_reports(result, json_out=json_out, markdown=markdown)


# ------------------------------------------------------------------------- models


def bundled_specs(device: str = "cpu") -> tuple[list[ModelSpec], list[str]]:
    """Every bundled model named ``<phenotype>_<arch>`` as a ModelSpec, plus notes."""
    from napari_pcim.classifier import bundled_models, load_classifier
    from napari_pcim.synth import PHENOTYPES

    specs, notes = [], []
    for name, path in bundled_models().items():
        pheno, _, arch = name.partition("_")
        if pheno not in PHENOTYPES or not arch:
            notes.append(f"bundled model {name} skipped: not named <phenotype>_<arch>")
            continue
        specs.append(ModelSpec(pheno, arch, load_classifier(path, device=device)))
    return specs, notes
