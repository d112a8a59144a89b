"""Attribution-map metrics: localisation against a ground-truth mask, and fidelity.

Every metric scores one attribution map (H, W) of one field for one target class.

*Localisation* metrics compare the map with a boolean mask of the pixels that carry
the phenotype (``synth`` gives it as the ``"gt"`` label): relevance mass / rank
accuracy, the pointing game, ROC AUC, PxAP and the best IoU / Dice over
thresholds. They are numpy-only.

*Fidelity* metrics (RISE's deletion and insertion) ask the classifier itself:
remove (or reveal) pixels in the order of the map and watch the target
probability. The symmetric relevance gain (SRG, Blücher et al. 2024) deletes in both
orders and reports AUC(least relevant first) − AUC(most relevant first): the model's
reaction to the removal itself appears in both curves and cancels. They import torch inside the functions, so ``import
napari_pcim.metrics`` stays torch-free.

All metrics first pass the map through :func:`normalize_map` (positive part,
divided by its maximum), the one normalisation applied identically to every
method. Degenerate inputs (empty mask, all-true mask, constant normalised map)
give NaN and a ``RuntimeWarning``, never an exception. Formulas and choices are in
``docs/metrics.md``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

if TYPE_CHECKING:
    import torch

#: Default baseline of the deletion and insertion metrics: each channel's median
#: over the field, i.e. the background level. A blur keeps foci visible (see
#: docs/metrics.md and tests/test_metrics.py::test_default_baseline_destroys_foci).
DEFAULT_FIDELITY_BASELINE = "median"


class MetricInfo(NamedTuple):
    """What a metric's number means; ``label`` is its name in words, for people."""

    label: str
    higher_is_better: bool
    kind: str  # "localisation" or "fidelity"
    description: str


METRICS: dict[str, MetricInfo] = {
    "relevance_mass": MetricInfo("relevance mass", True, "localisation",
                                 "share of the positive attribution that lies inside the mask"),
    "relevance_rank": MetricInfo("relevance rank accuracy", True, "localisation",
                                 "share of the top-|mask| pixels that lie inside the mask"),
    "pointing_game": MetricInfo("pointing game", True, "localisation",
                                "1 when the map's maximum lies inside the mask (ties: hit share)"),
    "roc_auc": MetricInfo("area under the ROC curve", True, "localisation",
                          "ROC AUC of the map as a pixel score for the mask (tie-aware)"),
    "pxap": MetricInfo("pixel average precision", True, "localisation",
                       "pixel average precision: area under the pixel PR curve"),
    "best_iou": MetricInfo("best intersection over union", True, "localisation",
                           "IoU of the thresholded map, best threshold"),
    "best_dice": MetricInfo("best Dice score", True, "localisation",
                            "Dice of the thresholded map, best threshold"),
    "deletion_auc": MetricInfo("area under the deletion curve", False, "fidelity",
                               "AUC of the target probability while deleting top pixels first"),
    "insertion_auc": MetricInfo("area under the insertion curve", True, "fidelity",
                                "AUC of the target probability while inserting top pixels first"),
    "srg": MetricInfo("symmetric relevance gain", True, "fidelity",
                      "deletion AUC least-relevant-first minus most-relevant-first (LIF − MIF)"),
}

LOCALISATION_METRICS = tuple(k for k, v in METRICS.items() if v.kind == "localisation")
FIDELITY_METRICS = tuple(k for k, v in METRICS.items() if v.kind == "fidelity")


class ThresholdScore(NamedTuple):
    """A score reached at the best threshold of the normalised map (``s >= threshold``)."""

    value: float
    threshold: float


# --------------------------------------------------------------------------- helpers


def normalize_map(attribution: Any) -> np.ndarray:
    """The one normalisation used by every metric: ``max(a, 0) / max(max(a, 0))``.

    Negative attribution (evidence *against* the target) counts as no evidence;
    the result lies in [0, 1] with maximum 1, or is all zeros when the map has
    no positive value. Returns float64. Raises ``ValueError`` on non-finite values.
    """
    a = np.asarray(attribution, dtype=np.float64)
    if not np.all(np.isfinite(a)):
        raise ValueError("attribution map contains NaN or infinite values")
    pos = np.maximum(a, 0.0)
    top = pos.max() if pos.size else 0.0
    return pos / top if top > 0 else pos


def _prepare(attribution: Any, mask: Any, metric: str) -> tuple[np.ndarray, np.ndarray] | None:
    """Validate and normalise; None (after a RuntimeWarning) when the metric is undefined."""
    a = np.asarray(attribution)
    m = np.asarray(mask)
    if a.ndim != 2:
        raise ValueError(f"{metric}: attribution must be 2-D (H, W), got shape {a.shape}")
    if m.shape != a.shape:
        raise ValueError(
            f"{metric}: mask shape {m.shape} does not match attribution shape {a.shape}"
        )
    s = normalize_map(a)
    m = m.astype(bool)
    reason = None
    if not m.any():
        reason = "the mask is empty"
    elif m.all():
        reason = "the mask covers every pixel"
    elif s.max() == s.min():
        reason = "the normalised map is constant (no positive attribution, or all equal)"
    if reason is not None:
        warnings.warn(
            f"{metric} is undefined: {reason}; returning NaN", RuntimeWarning, stacklevel=3
        )
        return None
    return s, m


def _sorted_groups(s: np.ndarray, m: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Thresholds at every distinct value of ``s`` (descending) with the counts at ``s >= t``.

    Returns ``(thresholds, n_selected, n_true_positive)``, one entry per distinct value.
    """
    s = s.ravel()
    m = m.ravel()
    order = np.argsort(-s, kind="stable")
    s_sorted = s[order]
    tp = np.cumsum(m[order])
    # The last index of each run of equal values closes one threshold group.
    ends = np.flatnonzero(np.r_[s_sorted[1:] != s_sorted[:-1], True])
    return s_sorted[ends], ends + 1, tp[ends]


# ----------------------------------------------------------------- localisation


def relevance_mass_accuracy(attribution: Any, mask: Any) -> float:
    """Share of the (normalised, positive) attribution that lies inside the mask."""
    prep = _prepare(attribution, mask, "relevance_mass")
    if prep is None:
        return math.nan
    s, m = prep
    return float(s[m].sum() / s.sum())


def relevance_rank_accuracy(attribution: Any, mask: Any) -> float:
    """Share of the K = |mask| highest-ranked pixels that lie inside the mask.

    Ties at the K-th value are shared out: the tied pixels contribute their
    in-mask share times the number of places left, which equals the expected
    score under a random tie break.
    """
    prep = _prepare(attribution, mask, "relevance_rank")
    if prep is None:
        return math.nan
    s, m = prep
    k = int(m.sum())
    kth = np.partition(s.ravel(), s.size - k)[s.size - k]  # K-th largest value
    above = s > kth
    tied = s == kth
    hits = float(m[above].sum())
    places_left = k - int(above.sum())
    hits += places_left * float(m[tied].sum()) / float(tied.sum())
    return hits / k


def pointing_game(attribution: Any, mask: Any, tolerance: float = 0) -> float:
    """1.0 when the map's maximum lies inside the mask dilated by ``tolerance`` pixels.

    Dilation is Euclidean: a pixel counts when it is within ``tolerance`` px of a
    mask pixel. When several pixels share the maximum the score is the share of
    them that hit (the expected hit under a random tie break), so it lies in [0, 1].
    """
    from scipy import ndimage

    if tolerance < 0:
        raise ValueError(f"pointing_game: tolerance must be >= 0, got {tolerance}")
    prep = _prepare(attribution, mask, "pointing_game")
    if prep is None:
        return math.nan
    s, m = prep
    if tolerance > 0:
        m = ndimage.distance_transform_edt(~m) <= tolerance
    top = s == s.max()
    return float(m[top].sum() / top.sum())


def roc_auc(attribution: Any, mask: Any) -> float:
    """ROC AUC of the normalised map as a score separating mask from non-mask pixels.

    Computed as the Mann–Whitney U statistic with average ranks, so tied scores
    count one half: AUC = (R_pos − P(P+1)/2) / (P·N).
    """
    from scipy.stats import rankdata

    prep = _prepare(attribution, mask, "roc_auc")
    if prep is None:
        return math.nan
    s, m = prep
    ranks = rankdata(s.ravel(), method="average")
    n_pos = float(m.sum())
    n_neg = float(m.size - n_pos)
    r_pos = ranks[m.ravel()].sum()
    return float((r_pos - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def pxap(attribution: Any, mask: Any) -> float:
    """Pixel average precision (PxAP, Choe et al. 2020): area under the pixel PR curve.

    Thresholds run over every distinct value t of the normalised map (the exact
    limit of the fine threshold grid of WSOL evaluation); the prediction at t is
    ``s >= t``. PxAP = Σ_l (R_l − R_{l−1})·P_l with R_0 = 0 (step-wise, no
    interpolation, as scikit-learn's average precision).
    """
    prep = _prepare(attribution, mask, "pxap")
    if prep is None:
        return math.nan
    s, m = prep
    _, n_sel, tp = _sorted_groups(s, m)
    precision = tp / n_sel
    recall = tp / float(m.sum())
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def _best_overlap(attribution: Any, mask: Any, kind: str) -> ThresholdScore:
    prep = _prepare(attribution, mask, f"best_{kind}")
    if prep is None:
        return ThresholdScore(math.nan, math.nan)
    s, m = prep
    thresholds, n_sel, tp = _sorted_groups(s, m)
    n_mask = float(m.sum())
    if kind == "iou":
        score = tp / (n_mask + n_sel - tp)
    else:
        score = 2.0 * tp / (n_mask + n_sel)
    i = int(np.argmax(score))  # first maximum: the highest such threshold
    return ThresholdScore(float(score[i]), float(thresholds[i]))


def best_iou_threshold(attribution: Any, mask: Any) -> ThresholdScore:
    """Best IoU of ``s >= t`` with the mask over every distinct t, and that t."""
    return _best_overlap(attribution, mask, "iou")


def best_dice_threshold(attribution: Any, mask: Any) -> ThresholdScore:
    """Best Dice of ``s >= t`` with the mask over every distinct t, and that t."""
    return _best_overlap(attribution, mask, "dice")


def best_iou(attribution: Any, mask: Any) -> float:
    """Best IoU over thresholds of the normalised map."""
    return _best_overlap(attribution, mask, "iou").value


def best_dice(attribution: Any, mask: Any) -> float:
    """Best Dice over thresholds of the normalised map."""
    return _best_overlap(attribution, mask, "dice").value


# ---------------------------------------------------------------------- fidelity


def _resolve_model(
    model: Any, field: Any, target: int | str, raw_zero: Any
) -> tuple[Callable[[torch.Tensor], torch.Tensor], torch.Tensor, int, Any]:
    """Turn a Classifier + raw field, or a forward function + normalised tensor, into
    ``(forward, x (1, C, H, W), target index, raw_zero)``."""
    import torch

    if hasattr(model, "prepare") and hasattr(model, "field_logits"):
        x = model.prepare(np.asarray(field))
        forward = model.field_logits
        if raw_zero is None:
            raw_zero = model.raw_zero(x.device)
        if isinstance(target, str):
            classes = list(model.meta.classes)
            if target not in classes:
                raise ValueError(f"unknown target class {target!r}; the model has {classes}")
            target = classes.index(target)
    elif callable(model):
        forward = model
        x = torch.as_tensor(field, dtype=torch.float32)
        if isinstance(target, str):
            raise ValueError(f"target {target!r} is a class name, but a plain forward function "
                             "has no class names; pass the class index")
    else:
        raise TypeError("fidelity metrics need a napari_pcim Classifier or a forward function "
                        f"f(x) -> logits, got {type(model).__name__}")
    if x.ndim == 3:
        x = x.unsqueeze(0)
    if x.ndim != 4 or x.shape[0] != 1:
        raise ValueError(f"expected one field (C, H, W) or (1, C, H, W), got shape {tuple(x.shape)}")
    return forward, x, int(target), raw_zero


def _target_probability(logits: torch.Tensor, target: int) -> torch.Tensor:
    """Softmax probability of ``target`` (sigmoid for a single-logit model)."""
    import torch

    if logits.ndim != 2:
        raise ValueError(f"the model must return logits (B, K), got shape {tuple(logits.shape)}")
    if logits.shape[1] == 1:
        p = torch.sigmoid(logits[:, 0])
        return p if target == 1 else 1 - p
    if not 0 <= target < logits.shape[1]:
        raise ValueError(f"target {target} is out of range for {logits.shape[1]} classes")
    return torch.softmax(logits.float(), dim=1)[:, target]


def perturbation_curve(
    attribution: Any, model: Any, field: Any, target: int | str, *, mode: str = "deletion",
    baseline: str = DEFAULT_FIDELITY_BASELINE, steps: int = 32, batch_size: int = 16,
    raw_zero: Any = None, seed: int = 0, order: str = "most",
) -> tuple[np.ndarray, np.ndarray]:
    """Target probability while deleting (or inserting) pixels in attribution order.

    ``model`` is a ``napari_pcim.classifier.Classifier`` with a raw field (C, H, W),
    or a forward function ``f(x) -> logits (B, K)`` with an already-normalised
    field tensor. Pixels are ranked by the normalised map, highest first; ties
    (e.g. the zeros of the positive part) are broken by a random permutation
    seeded with ``seed``. Step k of ``steps`` has ``round(k·H·W/steps)`` pixels
    replaced by the baseline (deletion) or revealed over it (insertion).
    ``order="least"`` ranks the lowest-attributed pixels first instead (LIF).
    Returns ``(fractions (steps+1,), probabilities (steps+1,))``.
    """
    import torch

    from napari_pcim.baseline_images import make_baseline

    if mode not in ("deletion", "insertion"):
        raise ValueError(f"mode must be 'deletion' or 'insertion', got {mode!r}")
    if order not in ("most", "least"):
        raise ValueError(f"order must be 'most' or 'least', got {order!r}")
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    forward, x, target, raw_zero = _resolve_model(model, field, target, raw_zero)
    h, w = x.shape[-2:]
    a = np.asarray(attribution)
    if a.shape != (h, w):
        raise ValueError(f"attribution shape {a.shape} does not match the field's {(h, w)}")
    s = normalize_map(a).ravel()
    if order == "least":
        s = -s
    # Random permutation first, then a stable sort: ties end up in random order.
    perm = np.random.default_rng(seed).permutation(s.size)
    order = perm[np.argsort(-s[perm], kind="stable")]
    rank = np.empty(s.size, dtype=np.int64)
    rank[order] = np.arange(s.size)

    base = make_baseline(x, baseline, raw_zero=raw_zero)
    n_px = np.rint(np.arange(steps + 1) * (h * w) / steps).astype(np.int64)
    rank_t = torch.as_tensor(rank.reshape(1, 1, h, w), device=x.device)
    probs: list[torch.Tensor] = []
    with torch.inference_mode():
        for start in range(0, steps + 1, batch_size):
            counts = torch.as_tensor(n_px[start : start + batch_size], device=x.device)
            chosen = rank_t < counts.view(-1, 1, 1, 1)  # (b, 1, H, W)
            if mode == "deletion":
                batch = torch.where(chosen, base, x)
            else:
                batch = torch.where(chosen, x, base)
            probs.append(_target_probability(forward(batch), target).float().cpu())
    return n_px / float(h * w), torch.cat(probs).numpy().astype(np.float64)


def _trapezoid(y: np.ndarray, x: np.ndarray) -> float:
    return float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2.0))


def deletion_auc(
    attribution: Any, model: Any, field: Any, target: int | str, **options: Any
) -> float:
    """Area under the deletion curve (lower is better); options as :func:`perturbation_curve`."""
    frac, prob = perturbation_curve(attribution, model, field, target, mode="deletion", **options)
    return _trapezoid(prob, frac)


def insertion_auc(
    attribution: Any, model: Any, field: Any, target: int | str, **options: Any
) -> float:
    """Area under the insertion curve (higher is better); options as :func:`perturbation_curve`."""
    frac, prob = perturbation_curve(attribution, model, field, target, mode="insertion", **options)
    return _trapezoid(prob, frac)


def srg(attribution: Any, model: Any, field: Any, target: int | str, **options: Any) -> float:
    """Symmetric relevance gain (Blücher et al. 2024): deletion AUC least-relevant-first
    minus most-relevant-first, on the target probability; higher is better, ~0 for a
    random order. Options as :func:`perturbation_curve` (``mode``, ``order`` set here)."""
    options = {k: v for k, v in options.items() if k not in ("mode", "order")}
    frac, lif = perturbation_curve(attribution, model, field, target, mode="deletion",
                                   order="least", **options)
    _, mif = perturbation_curve(attribution, model, field, target, mode="deletion",
                                order="most", **options)
    return _trapezoid(lif, frac) - _trapezoid(mif, frac)


# ------------------------------------------------------------------------- all


_LOCALISATION_FUNCS: dict[str, Callable[[Any, Any], float]] = {
    "relevance_mass": relevance_mass_accuracy,
    "relevance_rank": relevance_rank_accuracy,
    "pointing_game": pointing_game,
    "roc_auc": roc_auc,
    "pxap": pxap,
    "best_iou": best_iou,
    "best_dice": best_dice,
}


def evaluate_map(
    attribution: Any, mask: Any, *, classifier: Any = None, field: Any = None,
    target: int | str | None = None, **fidelity_options: Any,
) -> dict[str, float]:
    """Every metric of one map, keyed as :data:`METRICS`.

    Localisation metrics always; deletion/insertion AUC only when ``classifier``
    (a Classifier, or a forward function with a normalised ``field``), ``field``
    and ``target`` are given. ``fidelity_options`` go to :func:`perturbation_curve`.
    A degenerate mask or map gives NaN localisation values (one warning each).
    """
    out = {name: fn(attribution, mask) for name, fn in _LOCALISATION_FUNCS.items()}
    if classifier is not None:
        if field is None or target is None:
            raise ValueError("fidelity metrics need the field and the target with the classifier")
        frac, mif = perturbation_curve(attribution, classifier, field, target,
                                       mode="deletion", **fidelity_options)
        _, lif = perturbation_curve(attribution, classifier, field, target, mode="deletion",
                                    order="least", **fidelity_options)
        out["deletion_auc"] = _trapezoid(mif, frac)
        out["insertion_auc"] = insertion_auc(
            attribution, classifier, field, target, **fidelity_options
        )
        out["srg"] = _trapezoid(lif, frac) - out["deletion_auc"]
    return out
