"""Tests of napari_pcim.metrics: hand-computed values, invariances, degenerate inputs,
and deletion/insertion on a hand-built TorchScript foci detector."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from napari_pcim import metrics
from napari_pcim.baseline_images import make_baseline

LOC = metrics._LOCALISATION_FUNCS


# ------------------------------------------------------------------ normalisation


def test_normalize_map_positive_part_over_max():
    s = metrics.normalize_map([[-2.0, 1.0], [4.0, 0.0]])
    np.testing.assert_allclose(s, [[0.0, 0.25], [1.0, 0.0]])
    assert np.all(metrics.normalize_map([[-1.0, -3.0]]) == 0)
    with pytest.raises(ValueError, match="NaN"):
        metrics.normalize_map([[np.nan, 1.0]])


# ------------------------------------------------------------ hand-computed values


def test_relevance_mass_by_hand():
    mask = np.array([[True, False], [False, True]])
    assert metrics.relevance_mass_accuracy([[1.0, 2.0], [3.0, 4.0]], mask) == pytest.approx(0.5)
    # Negative attribution is dropped: positive parts 0, 2, 3, 0; mask holds the 2.
    mask2 = np.array([[True, True], [False, False]])
    assert metrics.relevance_mass_accuracy([[-1.0, 2.0], [3.0, 0.0]], mask2) == pytest.approx(0.4)


def test_relevance_rank_by_hand_and_ties():
    a = np.array([[9, 8, 7], [6, 5, 4], [3, 2, 1]], dtype=float)
    mask = np.eye(3, dtype=bool)  # holds 9, 5, 1; top-3 are 9, 8, 7
    assert metrics.relevance_rank_accuracy(a, mask) == pytest.approx(1 / 3)
    # K = 2: the 3 is in; one place left for three tied 1s, one of them in the mask.
    a = np.array([[3, 1, 1], [1, 0, 0], [0, 0, 0]], dtype=float)
    mask = np.zeros((3, 3), bool)
    mask[0, 0] = mask[0, 1] = True
    assert metrics.relevance_rank_accuracy(a, mask) == pytest.approx((1 + 1 / 3) / 2)


def test_pointing_game_tolerance_and_ties():
    a = np.zeros((4, 4))
    a[0, 0] = 1.0
    mask = np.zeros((4, 4), bool)
    mask[0, 1] = True
    assert metrics.pointing_game(a, mask) == 0.0
    assert metrics.pointing_game(a, mask, tolerance=1) == 1.0
    diag = np.zeros((4, 4), bool)
    diag[1, 1] = True  # sqrt(2) px away from the maximum
    assert metrics.pointing_game(a, diag, tolerance=1) == 0.0
    assert metrics.pointing_game(a, diag, tolerance=1.5) == 1.0
    a[3, 3] = 1.0  # a second, tied maximum outside the mask
    assert metrics.pointing_game(a, mask, tolerance=1) == 0.5
    with pytest.raises(ValueError, match="tolerance"):
        metrics.pointing_game(a, mask, tolerance=-1)


def test_roc_auc_by_hand_and_bruteforce():
    a = np.array([[0.9, 0.5], [0.5, 0.1]])
    mask = np.array([[True, True], [False, False]])
    # Pairs (pos, neg): (.9,.5)=1 (.9,.1)=1 (.5,.5)=1/2 (.5,.1)=1 -> 3.5 / 4.
    assert metrics.roc_auc(a, mask) == pytest.approx(0.875)
    rng = np.random.default_rng(3)
    a = rng.integers(0, 4, size=(6, 6)).astype(float)  # many ties
    mask = rng.random((6, 6)) < 0.4
    pos, neg = a[mask], a[~mask]
    pairs = [(p > n) + 0.5 * (p == n) for p, n in itertools.product(pos, neg)]
    assert metrics.roc_auc(a, mask) == pytest.approx(np.mean(pairs))


def test_pxap_by_hand():
    mask = np.array([[True, False], [True, False]])
    # t=4: P=1, R=.5; t=3: P=.5, R=.5; t=2: P=2/3, R=1; t=1: P=.5, R=1.
    assert metrics.pxap([[4.0, 3.0], [2.0, 1.0]], mask) == pytest.approx(0.5 + 1 / 3)
    # Ties: t=2 selects two pixels (one hit), t=1 three (two hits), t=0 all.
    assert metrics.pxap([[2.0, 2.0], [1.0, 0.0]], mask) == pytest.approx(0.25 + 1 / 3)


def test_best_iou_and_dice_by_hand():
    a = np.array([[4.0, 3.0], [2.0, 1.0]])
    mask = np.array([[True, False], [True, False]])
    iou = metrics.best_iou_threshold(a, mask)
    assert iou.value == pytest.approx(2 / 3)  # s >= 2/4 selects {4, 3, 2}
    assert iou.threshold == pytest.approx(0.5)
    dice = metrics.best_dice_threshold(a, mask)
    assert dice.value == pytest.approx(0.8)
    assert dice.threshold == pytest.approx(0.5)
    assert metrics.best_iou(a, mask) == iou.value
    assert metrics.best_dice(a, mask) == dice.value


def test_perfect_map_scores_one_everywhere():
    mask = np.zeros((5, 5), bool)
    mask[1:3, 2:4] = True
    scores = {name: fn(mask.astype(float), mask) for name, fn in LOC.items()}
    assert scores == pytest.approx({name: 1.0 for name in LOC})


# ------------------------------------------------------------------- invariances


def test_positive_scaling_and_monotone_transforms_leave_metrics_unchanged():
    rng = np.random.default_rng(0)
    a = rng.random((8, 8))
    mask = rng.random((8, 8)) < 0.3
    for name, fn in LOC.items():
        assert fn(7.3 * a, mask) == pytest.approx(fn(a, mask)), name
    # Rank-based metrics only see the order of the values.
    for name in ("relevance_rank", "pointing_game", "roc_auc", "pxap", "best_iou", "best_dice"):
        assert LOC[name](a**3, mask) == pytest.approx(LOC[name](a, mask)), name
    # Mass accuracy is not rank-based: cubing concentrates mass on the top pixels.
    assert metrics.relevance_mass_accuracy(a**3, mask) != pytest.approx(
        metrics.relevance_mass_accuracy(a, mask)
    )


# --------------------------------------------------------------- degenerate input


@pytest.mark.parametrize(
    "a, mask",
    [
        (np.arange(16.0).reshape(4, 4), np.zeros((4, 4), bool)),  # empty mask
        (np.arange(16.0).reshape(4, 4), np.ones((4, 4), bool)),  # all-true mask
        (np.full((4, 4), 2.0), np.eye(4, dtype=bool)),  # constant map
        (-np.arange(16.0).reshape(4, 4), np.eye(4, dtype=bool)),  # no positive part
    ],
    ids=["empty-mask", "full-mask", "constant-map", "negative-map"],
)
def test_degenerate_inputs_give_nan_and_warning(a, mask):
    for name, fn in LOC.items():
        with pytest.warns(RuntimeWarning, match="undefined"):
            assert math.isnan(fn(a, mask)), name
    with pytest.warns(RuntimeWarning):
        t = metrics.best_iou_threshold(a, mask)
    assert math.isnan(t.value) and math.isnan(t.threshold)


def test_bad_shapes_raise_clear_errors():
    with pytest.raises(ValueError, match="does not match"):
        metrics.roc_auc(np.zeros((3, 3)), np.zeros((3, 4), bool))
    with pytest.raises(ValueError, match="2-D"):
        metrics.pxap(np.zeros((1, 3, 3)), np.zeros((1, 3, 3), bool))


def test_metrics_table_matches_functions():
    assert set(LOC) | set(metrics.FIDELITY_METRICS) == set(metrics.METRICS)
    assert metrics.METRICS["deletion_auc"].higher_is_better is False
    assert all(metrics.METRICS[m].higher_is_better for m in LOC)


# ---------------------------------------------------------------------- fidelity


class FociNet(torch.nn.Module):
    """Hand-built 'treated' detector: a bright spot on the local GFP background.

    Logit of "treated" = 4·(mean of the 8 largest white-top-hat values − 1);
    input is normalised (C, H, W) with GFP in channel 2.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = x[:, 2:3]
        local = F.avg_pool2d(g, 9, stride=1, padding=4, count_include_pad=False)
        tophat = F.relu(g - local).flatten(1)
        score = tophat.topk(8, dim=1).values.mean(dim=1)
        treated = 4.0 * (score - 1.0)
        return torch.stack([torch.zeros_like(treated), treated], dim=1)


def foci_field(size: int = 48, seed: int = 0) -> tuple[torch.Tensor, np.ndarray]:
    """A foci-like field in normalised units, and its foci ground truth mask.

    Four channels as the synthetic plates (DAPI, Actin, GFP, Brightfield); GFP has
    noisy background, two dim cells and five Gaussian foci (sigma 1.2 px, peak +6).
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size].astype(float)
    img = rng.normal(0.0, 0.1, (4, size, size))
    gfp = img[2]
    for cy, cx in ((14, 14), (32, 30)):
        gfp += 1.0 * (((yy - cy) ** 2 + (xx - cx) ** 2) < 9**2)
    centres = [(12, 12), (16, 17), (30, 28), (34, 33), (29, 34)]
    gt = np.zeros((size, size), bool)
    for cy, cx in centres:
        d2 = (yy - cy) ** 2 + (xx - cx) ** 2
        gfp += 6.0 * np.exp(-d2 / (2 * 1.2**2))
        gt |= d2 <= 2.5**2
    return torch.as_tensor(img, dtype=torch.float32), gt


@pytest.fixture(scope="module")
def foci_model() -> torch.jit.ScriptModule:
    return torch.jit.script(FociNet().eval())


def p_treated(model: torch.jit.ScriptModule, x: torch.Tensor) -> float:
    with torch.inference_mode():
        return float(torch.softmax(model(x), dim=1)[0, 1])


def test_default_baseline_destroys_foci(foci_model):
    """The default fidelity baseline turns a foci field into a control-looking image,
    while a mild blur would not: the reason the default is ``median``."""
    x, _ = foci_field()
    x = x[None]
    assert p_treated(foci_model, x) > 0.95
    base = make_baseline(x, metrics.DEFAULT_FIDELITY_BASELINE)
    assert p_treated(foci_model, base) < 0.05
    mild_blur = make_baseline(x, "blur", blur_sigma=1.0)
    assert p_treated(foci_model, mild_blur) > 0.5


def test_perturbation_curve_endpoints(foci_model):
    x, gt = foci_field()
    frac, prob = metrics.perturbation_curve(gt.astype(float), foci_model, x, 1, steps=8)
    assert frac[0] == 0.0 and frac[-1] == 1.0 and len(prob) == 9
    assert prob[0] == pytest.approx(p_treated(foci_model, x[None]), abs=1e-5)
    base = make_baseline(x[None], "median")
    assert prob[-1] == pytest.approx(p_treated(foci_model, base), abs=1e-5)
    _, ins = metrics.perturbation_curve(
        gt.astype(float), foci_model, x, 1, mode="insertion", steps=8
    )
    assert ins[0] == pytest.approx(prob[-1], abs=1e-5)
    assert ins[-1] == pytest.approx(prob[0], abs=1e-5)


@pytest.mark.parametrize("baseline", ["median", "zero"])
def test_good_map_beats_reversed_map(foci_model, baseline):
    x, gt = foci_field()
    yy, xx = np.mgrid[:48, :48]
    # Known-good map: the foci mask, softened; reversed map: the same ranks flipped.
    good = gt.astype(float) + 0.01 * np.exp(-((yy - 24) ** 2 + (xx - 24) ** 2) / 400.0)
    reversed_map = good.max() - good
    opts = dict(steps=16, batch_size=8, baseline=baseline)
    d_good = metrics.deletion_auc(good, foci_model, x, 1, **opts)
    d_rev = metrics.deletion_auc(reversed_map, foci_model, x, 1, **opts)
    i_good = metrics.insertion_auc(good, foci_model, x, 1, **opts)
    i_rev = metrics.insertion_auc(reversed_map, foci_model, x, 1, **opts)
    assert d_good < d_rev - 0.3
    assert i_good > i_rev + 0.3
    assert all(0.0 <= v <= 1.0 for v in (d_good, d_rev, i_good, i_rev))


def test_evaluate_map_all_metrics(foci_model):
    x, gt = foci_field()
    out = metrics.evaluate_map(gt.astype(float), gt, classifier=foci_model, field=x, target=1,
                               steps=8)
    assert set(out) == set(metrics.METRICS)
    assert out["roc_auc"] == pytest.approx(1.0)
    loc_only = metrics.evaluate_map(gt.astype(float), gt)
    assert set(loc_only) == set(metrics.LOCALISATION_METRICS)
    with pytest.raises(ValueError, match="target"):
        metrics.evaluate_map(gt.astype(float), gt, classifier=foci_model, field=x)


def test_fidelity_input_errors(foci_model):
    x, gt = foci_field()
    with pytest.raises(ValueError, match="does not match"):
        metrics.deletion_auc(np.zeros((10, 10)), foci_model, x, 1)
    with pytest.raises(ValueError, match="class name"):
        metrics.deletion_auc(gt.astype(float), foci_model, x, "treated")
    with pytest.raises(ValueError, match="out of range"):
        metrics.deletion_auc(gt.astype(float), foci_model, x, 5, steps=2)
    with pytest.raises(ValueError, match="mode"):
        metrics.perturbation_curve(gt.astype(float), foci_model, x, 1, mode="sideways")


def test_classifier_path_matches_forward_path(foci_model, tmp_path):
    """A saved-and-loaded Classifier with a raw uint16 field scores like the forward
    function on the same field normalised by hand."""
    from napari_pcim.classifier import load_classifier, save_classifier

    x, gt = foci_field()
    mean, std = 200.0, 100.0
    raw = np.clip(np.rint(x.numpy() * std + mean), 0, 65535).astype(np.uint16)
    meta = {
        "channels": ["DAPI", "Actin", "GFP", "Brightfield"],
        "input_size": [48, 48],
        "normalization": {"mean": [mean] * 4, "std": [std] * 4},
        "classes": ["control", "treated"],
        "field_mode": "resize",
    }
    clf = load_classifier(save_classifier(FociNet().eval(), meta, tmp_path / "foci.pt"))
    x_norm = (torch.as_tensor(raw, dtype=torch.float32) - mean) / std
    raw_zero = torch.full((4,), -mean / std)
    good = gt.astype(float)
    for baseline in ("median", "zero"):
        by_clf = metrics.deletion_auc(good, clf, raw, "treated", steps=8, baseline=baseline)
        by_fn = metrics.deletion_auc(
            good, foci_model, x_norm, 1, steps=8, baseline=baseline, raw_zero=raw_zero
        )
        assert by_clf == pytest.approx(by_fn, abs=1e-5)
    with pytest.raises(ValueError, match="unknown target class"):
        metrics.insertion_auc(good, clf, raw, "mitotic", steps=2)


def test_metrics_module_imports_without_torch():
    import subprocess
    import sys

    code = "import sys, napari_pcim.metrics; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_srg_rewards_the_right_order_and_cancels_the_removal_effect(foci_model):
    """SRG = deletion AUC least-relevant-first − most-relevant-first: positive for the
    foci mask, negative for its reverse, and the LIF curve is the MIF curve of the reverse."""
    x, gt = foci_field()
    good = gt.astype(float) + 1e-3 * np.random.default_rng(0).random(gt.shape)
    rev = good.max() - good
    opts = {"steps": 16, "batch_size": 8, "baseline": "median"}
    s_good = metrics.srg(good, foci_model, x, 1, **opts)
    s_rev = metrics.srg(rev, foci_model, x, 1, **opts)
    assert s_good > 0.3 and s_rev < -0.3
    _, lif = metrics.perturbation_curve(good, foci_model, x, 1, order="least", **opts)
    _, mif_rev = metrics.perturbation_curve(rev, foci_model, x, 1, **opts)
    np.testing.assert_allclose(lif, mif_rev, atol=1e-6)
    out = metrics.evaluate_map(good, gt, classifier=foci_model, field=x, target=1, **opts)
    assert out["srg"] == pytest.approx(s_good, abs=1e-6)
    with pytest.raises(ValueError, match="order"):
        metrics.perturbation_curve(good, foci_model, x, 1, order="random")


def test_background_baseline_removes_foci_and_keeps_the_background(foci_model):
    x, gt = foci_field()
    bg = make_baseline(x[None], "background")
    assert bg.shape == x[None].shape and torch.isfinite(bg).all()
    # The foci are gone: their pixels now look like the surrounding background ...
    fg = torch.as_tensor(gt)
    assert float((bg[0, 2][fg] - bg[0, 2][~fg].mean()).abs().mean()) < 0.2 * float(
        (x[2][fg] - x[2][~fg].mean()).abs().mean())
    # ... and the model calls the result control.
    assert p_treated(foci_model, bg) < 0.5 < p_treated(foci_model, x[None])
    with pytest.raises(ValueError, match="background"):
        make_baseline(x[None], "noise")
