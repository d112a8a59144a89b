"""Tests of the quality benchmark core (napari_pcim.bench.quality): a tiny run on two
held-out fields with a hand-built TorchScript classifier, the row schema, CI ordering,
and the winner / tie rule."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from napari_pcim import metrics
from napari_pcim.bench import quality
from napari_pcim.classifier import load_classifier, save_classifier
from napari_pcim.synth import CHANNELS

ROW_KEYS = {"phenotype", "arch", "method", "metric", "mean", "ci_low", "ci_high", "n",
            "higher_is_better"}


class SpotNet(torch.nn.Module):
    """Tiny CNN: a fixed spot detector on GFP, global max pooling, a linear read-out."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(4, 1, 5, padding=2, bias=False)
        with torch.no_grad():
            k = -torch.ones(5, 5) / 24.0
            k[2, 2] = 1.0  # centre minus surround
            self.conv.weight.zero_()
            self.conv.weight[0, 2] = k

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = torch.relu(self.conv(x)).amax(dim=(1, 2, 3))
        t = 2.0 * (s - 1.0)
        return torch.stack([torch.zeros_like(t), t], dim=1)


@pytest.fixture(scope="module")
def tiny_classifier(tmp_path_factory):
    meta = {
        "channels": list(CHANNELS),
        "input_size": [64, 64],
        "normalization": {"mean": [150.0] * 4, "std": [100.0] * 4},
        "classes": ["control", "treated"],
        "field_mode": "tile",
        "tile_overlap": 16,
        "arch": "spotnet",
    }
    path = save_classifier(SpotNet().eval(), meta, tmp_path_factory.mktemp("m") / "spot.pt")
    return load_classifier(path)


def test_tiny_benchmark_rows_schema_and_ci_order(tiny_classifier, tmp_path):
    methods = ("pcim", "rise", "saliency", "occlusion", "feature_ablation", "pixelcam",
               "pcim_20steps")
    result = quality.run_benchmark(
        [quality.ModelSpec("foci", "spotnet", tiny_classifier)],
        methods=methods,
        n_fields=2,
        size=64,
        method_options={
            "pcim": {"steps": 3},
            "rise": {"n_masks": 32},
            "occlusion": {"window": 32, "stride": 32},
        },
        fidelity={"steps": 4, "baseline": "median"},
        n_boot=200,
    )
    rows = result.rows
    assert all(set(r) == ROW_KEYS for r in rows)
    # pixelcam needs a localize head: skipped with a note, not silently.
    assert {r["method"] for r in rows} == set(methods) - {"pixelcam"}
    assert any("pixelcam skipped" in n for n in result.notes)
    expected_metrics = set(metrics.METRICS) | {quality.TIME_METRIC}
    for method in set(methods) - {"pixelcam"}:
        assert {r["metric"] for r in rows if r["method"] == method} == expected_metrics
    for r in rows:
        assert (r["phenotype"], r["arch"]) == ("foci", "spotnet")
        assert 0 <= r["n"] <= 2
        if r["n"]:
            assert r["ci_low"] <= r["mean"] <= r["ci_high"]
        if r["metric"] in metrics.METRICS:
            assert r["higher_is_better"] == metrics.METRICS[r["metric"]].higher_is_better
    # Baseline check: p(treated) per baseline; a constant baseline gives SpotNet no spot.
    check = result.baseline_check["foci/spotnet"]
    assert set(check) == {"treated fields", "control fields", *(k for k, _ in quality.BASELINE_CHECK)}
    assert all(0.0 <= v <= 1.0 for v in check.values())
    # Recompute the median row by hand: per-channel medians of the normalised fields.
    from napari_pcim import synth

    by_hand = []
    for i in range(2):
        raw = synth.generate_field("foci", True, size=64, seed=quality.HELD_OUT_SEED + i).image
        norm = (raw.astype(np.float32) - 150.0) / 100.0
        const = np.broadcast_to(np.median(norm, axis=(1, 2))[:, None, None], norm.shape)
        with torch.no_grad():
            logits = tiny_classifier.module(torch.as_tensor(np.array(const))[None])
        by_hand.append(float(torch.softmax(logits, 1)[0, 1]))
    assert check["median"] == pytest.approx(np.mean(by_hand), abs=1e-5)
    timing = [r for r in rows if r["metric"] == quality.TIME_METRIC]
    assert all(r["n"] == 1 and r["mean"] > 0 for r in timing)  # first field left out
    # Flat maps are counted per (model, method); the split and the ablation are recorded.
    assert set(result.flat) == {f"foci/spotnet/{m}" for m in set(methods) - {"pixelcam"}}
    assert all(0 <= v <= 2 for v in result.flat.values())
    assert result.settings["seed"] == quality.HELD_OUT_SEED != result.settings["tuning_seed"]
    # The ablation never competes for "best": it appears in no winner set.
    assert all("pcim_20steps" not in w for w in quality.winners(rows).values())
    # The reports the CLI writes: JSON rows round-trip, markdown has the table and summary.
    md = quality.write_reports(
        result, json_out=tmp_path / "out" / "rows.json", markdown=tmp_path / "out" / "q.md"
    )
    # NaN-aware round trip (a degenerate cell is NaN, and NaN != NaN)
    assert json.dumps(json.loads((tmp_path / "out" / "rows.json").read_text())) == json.dumps(rows)
    assert "#### foci · spotnet" in md and "PCIM best or tied" in md and "Baseline check" in md
    assert "tuning fields, seeds 6000001" in md and "PCIM vs RISE" in md and "PCIM ablation" in md
    assert md.index("relevance_rank ↑") < md.index("relevance_mass ↑")  # rank-based lead
    assert md in (tmp_path / "out" / "q.md").read_text()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["q.md", "rows.json"]


def test_bootstrap_ci_properties():
    mean, low, high = quality.bootstrap_ci([0.5] * 5)
    assert mean == low == high == 0.5
    mean, low, high = quality.bootstrap_ci([0.0, 1.0, math.nan, 0.2, 0.9], n_boot=500)
    assert mean == pytest.approx(0.525)
    assert 0.0 <= low < mean < high <= 1.0
    assert all(math.isnan(v) for v in quality.bootstrap_ci([math.nan]))
    # More data, narrower interval.
    rng = np.random.default_rng(0)
    few = quality.bootstrap_ci(rng.random(10), seed=1)
    many = quality.bootstrap_ci(rng.random(400), seed=1)
    assert many[2] - many[1] < few[2] - few[1]


def _row(method, metric, mean, low, high, higher=True):
    return {"phenotype": "foci", "arch": "vgg", "method": method, "metric": metric,
            "mean": mean, "ci_low": low, "ci_high": high, "n": 10, "higher_is_better": higher}


def test_winners_ties_by_ci_overlap_and_pcim_summary():
    rows = [
        _row("pcim", "roc_auc", 0.90, 0.85, 0.95),
        _row("rise", "roc_auc", 0.84, 0.80, 0.86),  # overlaps pcim's CI: tied
        _row("saliency", "roc_auc", 0.70, 0.65, 0.75),  # does not overlap: loses
        _row("pcim", "deletion_auc", 0.30, 0.25, 0.35, higher=False),
        _row("rise", "deletion_auc", 0.10, 0.05, 0.15, higher=False),  # lower is better
        _row("pcim", quality.TIME_METRIC, 9.0, 8.0, 10.0, higher=False),
        _row("rise", quality.TIME_METRIC, 1.0, 0.9, 1.1, higher=False),  # not a quality cell
    ]
    win = quality.winners(rows)
    assert win == {("foci", "vgg", "roc_auc"): {"pcim", "rise"},
                   ("foci", "vgg", "deletion_auc"): {"rise"}}
    share, lost = quality.pcim_summary(rows)
    assert share == 0.5
    assert lost == [("foci", "vgg", "deletion_auc")]


def test_markdown_between_markers_only(tmp_path):
    """--markdown on a file with the quality markers replaces only the text between them."""
    from napari_pcim.bench import quality_report

    doc = tmp_path / "benchmarks.md"
    doc.write_text(f"# Speed\nkeep me\n{quality_report.BEGIN}\nold table\n{quality_report.END}\ntail\n")
    rows = [_row("pcim", "pxap", 0.8, 0.7, 0.9), _row("rise", "pxap", 0.2, 0.1, 0.3)]
    result = quality.QualityResult(rows=rows, settings={"seed": quality.HELD_OUT_SEED})
    quality.write_reports(result, markdown=doc)
    text = doc.read_text()
    assert text.startswith("# Speed\nkeep me\n") and text.endswith(f"{quality_report.END}\ntail\n")
    assert "old table" not in text and "PCIM best or tied in 100% of 1" in text
    vs = quality_report.pcim_vs_rise(result)
    assert vs == [("foci", "vgg", "pxap", 0.8, 0.2, True)]


class NoSpotNet(SpotNet):
    """Calls a field "treated" when it has *no* spot: any spot-free baseline looks treated."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = torch.relu(self.conv(x)).amax(dim=(1, 2, 3))
        t = 4.0 * (1.5 - s)
        return torch.stack([torch.zeros_like(t), t], dim=1)


def test_unmeasurable_fidelity_is_left_out(tiny_classifier, tmp_path):
    """A fidelity baseline the model still calls treated: no fidelity rows, a note says why;
    the same run with a model that calls the baseline control has all fidelity rows."""
    meta = dict(tiny_classifier.meta.extra, channels=list(CHANNELS), input_size=[64, 64], classes=["control", "treated"], normalization={"mean": [150.0] * 4, "std": [100.0] * 4}, field_mode="tile", tile_overlap=16, arch="nospot")
    nospot = load_classifier(save_classifier(NoSpotNet().eval(), meta, tmp_path / "nospot.pt"))
    kw = {"methods": ("saliency",), "n_fields": 1, "size": 64, "n_boot": 50,
          "fidelity": {"steps": 4, "baseline": "median"}}
    bad = quality.run_benchmark([quality.ModelSpec("foci", "nospot", nospot)], **kw)
    assert bad.baseline_check["foci/nospot"]["median"] >= quality.MEASURABLE_P
    assert not [r for r in bad.rows if r["metric"] in metrics.FIDELITY_METRICS]
    assert any("fidelity not measurable" in n for n in bad.notes)
    assert "not measurable" in quality.to_markdown(bad)
    good = quality.run_benchmark([quality.ModelSpec("foci", "spotnet", tiny_classifier)], **kw)
    assert good.baseline_check["foci/spotnet"]["median"] < quality.MEASURABLE_P
    assert {r["metric"] for r in good.rows if r["metric"] in metrics.FIDELITY_METRICS} == set(
        metrics.FIDELITY_METRICS)
