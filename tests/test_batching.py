"""Self-tuning batch size: sweep, cache key, memory and disk cache, explicit batch wins, cost model."""

from __future__ import annotations

import json

import pytest
import torch

from napari_pcim.explainers import batching
from napari_pcim.explainers.batching import (
    CANDIDATES,
    cache_key,
    estimate_text,
    forward_passes,
    max_batch,
    sweep,
    tune,
    tuned_batch_size,
)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("NAPARI_PCIM_CACHE", str(tmp_path))
    batching.forget()
    yield tmp_path
    batching.forget()


def _net() -> torch.jit.ScriptModule:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(2, 4, 3, padding=1), torch.nn.ReLU(),
                              torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 2))
    return torch.jit.script(net.eval())


@pytest.fixture(scope="module")
def tiny_classifier(tmp_path_factory):
    from napari_pcim.classifier import load_classifier, save_classifier

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(4, 4, 3, padding=1), torch.nn.ReLU(),
                              torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 2))
    meta = {"channels": ["DAPI", "Actin", "GFP", "Brightfield"], "input_size": [32, 32],
            "normalization": {"mean": [100.0] * 4, "std": [50.0] * 4},
            "classes": ["control", "treated"], "field_mode": "tile", "tile_overlap": 8}
    path = tmp_path_factory.mktemp("m") / "tiny.pt"
    return load_classifier(save_classifier(net.eval(), meta, path))


def test_cache_key_separates_every_setting() -> None:
    base = cache_key("abc", "cpu", 1, (4, 128, 128))
    others = {cache_key("abd", "cpu", 1, (4, 128, 128)), cache_key("abc", "cuda:0", 1, (4, 128, 128)),
              cache_key("abc", "cpu", 2, (4, 128, 128)), cache_key("abc", "cpu", 1, (4, 64, 64)),
              cache_key("abc", "cpu", 1, (4, 128, 128), grad=True)}
    assert base == "abc|cpu|1|4x128x128|fwd" and base not in others and len(others) == 5


def test_sweep_times_each_size_within_the_memory_bound() -> None:
    times = sweep(_net(), torch.rand(1, 2, 16, 16))
    assert set(times) <= set(CANDIDATES) and 4 in times and all(t > 0 for t in times.values())
    assert max_batch((4, 2048, 2048)) == 1 and max_batch((4, 128, 128)) == 256
    big = sweep(_net(), torch.rand(1, 2, 1024, 1024), candidates=(4, 8, 16))
    assert set(big) == {4, 8}  # 16 × 2 × 1024² values would pass the 2^24 bound


def test_tuned_once_then_cached_in_memory_and_on_disk(cache) -> None:
    net, x = _net(), torch.rand(1, 2, 16, 16)
    bs, per_image = tune(net, x, model="sha-test")
    assert bs in CANDIDATES and per_image > 0
    disk = json.loads((cache / "batch_sizes.json").read_text())
    key = cache_key("sha-test", "cpu", torch.get_num_threads(), (2, 16, 16))
    assert disk == {key: [bs, per_image]}
    batching.forget()  # a new session: the disk answer is reused, not re-measured
    disk[key] = [7, 0.5]
    (cache / "batch_sizes.json").write_text(json.dumps(disk))
    assert tuned_batch_size(net, x, model="sha-test") == 7
    assert tuned_batch_size(net, x[:0], model="sha-test") == batching.FALLBACK


def test_explain_tunes_unless_batch_size_is_given(cache, tiny_classifier) -> None:
    from napari_pcim.explainers import explain

    clf = tiny_classifier
    field = torch.rand(len(clf.meta.channels), *clf.meta.input_size).numpy() * 1000
    auto = explain(clf, field, method="rise", n_masks=32, device="cpu")
    assert auto.info["batch_size_tuned"] is True and auto.info["batch_size"] in CANDIDATES
    assert auto.options["batch_size"] is None and auto.info["masks_used"] == 32
    fixed = explain(clf, field, method="rise", n_masks=32, batch_size=7, device="cpu")
    assert fixed.info == {**fixed.info, "batch_size": 7, "batch_size_tuned": False}
    assert fixed.options["batch_size"] == 7 and "info" in fixed.to_dict()
    ixg = explain(clf, field, method="input_x_gradient", device="cpu")  # no batch_size option
    assert ixg.info["batch_size_tuned"] is True and "masks_used" not in ixg.info


def test_forward_pass_cost_model() -> None:
    assert forward_passes("rise", {"n_masks": 1000, "tolerance": 0.0}, 9) == (9 + 9000, 9 + 9000)
    typical, most = forward_passes("rise", {"n_masks": 1000, "tolerance": 0.05}, 1)
    assert most == 1001 and typical == 1 + 1000 * batching.RISE_TYPICAL_SHARE
    one_start = {"steps": 20, "starts": 1, "start_noise": 0.0}
    assert forward_passes("pcim", one_start, 4) == (4 + 240, 4 + 240)
    # random starts multiply the passes; noise 0 runs one start however many are asked
    assert forward_passes("pcim", {**one_start, "starts": 8, "start_noise": 0.25}, 4)[1] == 4 + 8 * 240
    assert forward_passes("pcim", {**one_start, "starts": 8}, 4)[1] == 4 + 240
    # options left out take the dataclass defaults (they were once a stale copy)
    from napari_pcim.explainers.pcim_options import PCIMOptions
    from napari_pcim.explainers.rise import RISEOptions

    d = PCIMOptions()
    assert forward_passes("pcim", {}, 1)[1] == 1 + batching.BACKWARD_FACTOR * d.steps * d.starts
    assert forward_passes("rise", {"tolerance": 0}, 1)[1] == 1 + RISEOptions().n_masks
    assert forward_passes("occlusion", {}, 1) is None
    assert estimate_text(40.2, 40.2) == "about 40 s on this machine"
    assert estimate_text(30, 120) == "about 30 s on this machine, at most 2.0 min"
    assert estimate_text(0.2, 0.2) == "under 1 s on this machine"


def test_pcim_optimisation_batch_is_tuned_for_forward_and_backward(cache, tiny_classifier) -> None:
    """PCIM's batch_size None uses the tuned forward+backward batch; an explicit one wins."""
    from napari_pcim.explainers import explain

    clf = tiny_classifier
    field = torch.rand(len(clf.meta.channels), 64, 64).numpy() * 1000  # 9 tiles of 32²
    key = cache_key(clf.sha256, "cpu", torch.get_num_threads(), (4, 32, 32), grad=True)
    batching._memory[key] = (5, 1e-3)  # as a sweep would have left it (5 is no candidate)
    auto = explain(clf, field, method="pcim", device="cpu")
    assert auto.options["batch_size"] is None
    assert auto.info["batch_size"] == 5 and auto.info["batch_size_tuned"] is True
    fixed = explain(clf, field, method="pcim", batch_size=3, device="cpu")
    assert fixed.info["batch_size"] == 3 and fixed.info["batch_size_tuned"] is False
    # the batch decides only which tiles share a model call, not the maps
    whole = explain(clf, field, method="pcim", batch_size=9, device="cpu")
    for other in (auto, fixed):
        assert abs(other.maps - whole.maps).max() < 1e-5 * max(1.0, abs(whole.maps).max())
    batching.forget()  # nothing cached: the sweep runs on a forward+backward pass
    tuned = explain(clf, field, method="pcim", device="cpu")
    assert tuned.info["batch_size"] in CANDIDATES and key in batching._memory


def test_a_gpu_sweep_tries_larger_batches_within_a_larger_memory_cap():
    from napari_pcim.explainers.batching import CANDIDATES, GPU_CANDIDATES, max_batch

    assert max(GPU_CANDIDATES) > max(CANDIDATES) and GPU_CANDIDATES[:len(CANDIDATES)] == CANDIDATES
    tile = (4, 128, 128)
    assert max_batch(tile) == 256 and max_batch(tile, gpu=True) == 4096
