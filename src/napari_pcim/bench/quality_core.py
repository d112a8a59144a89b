"""The shared vocabulary of the quality benchmark: seeds, ablations, the result type and
the winner / tie statistics (bootstrap CIs). :mod:`napari_pcim.bench.quality` runs the
benchmark, :mod:`napari_pcim.bench.quality_report` writes it; both import from here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: Seed of the evaluation fields: the published tables use these, and no default is chosen
#: on them (training uses small seeds).
HELD_OUT_SEED = 7_000_001
#: Seed of the tuning fields: method defaults (PCIM, RISE) are chosen on these only.
TUNING_SEED = 6_000_001
TARGET_CLASS = "treated"
#: Methods given the field's own label image (cells, else worms, else nuclei) as ``regions=``.
TIME_METRIC = "seconds_per_field"
#: PCIM's read-out from the image alone: one start, unsmoothed (centred Input×Gradient at 1 step).
PCIM_ONE_START = {"starts": 1, "start_noise": 0.0, "smooth": 0.0}
#: PCIM's original formulation (before issue 12), reachable through its options.
PCIM_ORIGINAL = {"loss": "log-prob", "update": "adam", "budget": 0.5,
                 "readout": "mass-above-median", **PCIM_ONE_START}
#: Ablation rows: name → (method, options over its defaults). Reported, never "best".
#: ``pcim_20steps`` iterates from the same single start as ``pcim_first_order``: the two
#: differ in the optimisation alone.
ABLATIONS: dict[str, tuple[str, dict[str, Any]]] = {
    "pcim_first_order": ("pcim", PCIM_ONE_START),
    "pcim_20steps": ("pcim", {**PCIM_ONE_START, "steps": 20}),
    "pcim_original": ("pcim", PCIM_ORIGINAL),
}

@dataclass
class ModelSpec:
    """One benchmarked classifier: its phenotype, an architecture label and the Classifier."""

    phenotype: str
    arch: str
    classifier: Any


@dataclass
class QualityResult:
    """Rows (metrics and per-field time), notes on skipped methods, and the run's settings."""

    rows: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    #: {"phenotype/arch": {"treated fields": p, "control fields": p, <baseline>: p}}
    baseline_check: dict[str, dict[str, float]] = field(default_factory=dict)
    #: {"phenotype/arch/method": number of flat maps (constant after normalisation)}
    flat: dict[str, int] = field(default_factory=dict)


# --------------------------------------------------------------------------- statistics


def bootstrap_ci(
    values: Sequence[float], *, n_boot: int = 2000, level: float = 0.95, seed: int = 0
) -> tuple[float, float, float]:
    """(mean, low, high): the mean and its percentile-bootstrap CI over finite values.

    NaN values are dropped first; one value gives a zero-width interval, none gives NaNs.
    """
    v = np.asarray([x for x in values if math.isfinite(x)], dtype=np.float64)
    if v.size == 0:
        return math.nan, math.nan, math.nan
    mean = float(v.mean())
    if v.size == 1:
        return mean, mean, mean
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, v.size, size=(n_boot, v.size))].mean(axis=1)
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    # Guard against float round-off putting the mean a hair outside its own interval.
    return mean, float(min(low, mean)), float(max(high, mean))


def winners(rows: list[dict[str, Any]]) -> dict[tuple[str, str, str], set[str]]:
    """{(phenotype, arch, metric): methods that are best or tied (CI overlaps the best's)}."""
    cells: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for r in rows:
        if r["metric"] != TIME_METRIC and math.isfinite(r["mean"]) and r["method"] not in ABLATIONS:
            cells.setdefault((r["phenotype"], r["arch"], r["metric"]), []).append(r)
    out = {}
    for key, cell in cells.items():
        higher = cell[0]["higher_is_better"]
        best = max(cell, key=lambda r: r["mean"] if higher else -r["mean"])
        out[key] = {
            r["method"]
            for r in cell
            if r["ci_low"] <= best["ci_high"] and r["ci_high"] >= best["ci_low"]
        }
    return out


def pcim_summary(
    rows: list[dict[str, Any]], method: str = "pcim"
) -> tuple[float, list[tuple[str, str, str]]]:
    """(share of cells where ``method`` is best or tied, the cells it loses)."""
    win = winners(rows)
    present = {
        (r["phenotype"], r["arch"], r["metric"]) for r in rows if r["method"] == method
    }
    cells = [k for k in win if k in present]
    if not cells:
        return math.nan, []
    lost = sorted(k for k in cells if method not in win[k])
    return 1.0 - len(lost) / len(cells), lost
