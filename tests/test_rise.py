"""RISE core: known-answer localisation, seeding, chunked masks, region masks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from known_answer import X0, Y0, S, SquareMarker
from known_answer import known_answer_field as _field

from napari_pcim.explainers.grid_masks import GridMasks
from napari_pcim.explainers.options import validate_options
from napari_pcim.explainers.regions import RegionMasks, slic_labels
from napari_pcim.explainers.rise import MASK_CHUNK, ROUND, RISEOptions, rise_attribute


def _inside(a: torch.Tensor) -> float:
    """Share of the map's mass above its median that lies inside the square."""
    a = (a - a.median()).clamp(min=0)
    return float(a[Y0 : Y0 + S, X0 : X0 + S].sum() / a.sum())


@pytest.fixture(scope="module")
def model() -> torch.jit.ScriptModule:
    return torch.jit.script(SquareMarker(Y0, X0, S))


def test_known_answer_mass_inside_square(model) -> None:
    a = rise_attribute(model, _field(), torch.tensor([[1]]), options=RISEOptions(n_masks=2000))[0, 0]
    assert _inside(a) > 0.5 and _inside(a) > 3 * S * S / 64**2


def test_seeded_reproducible_and_batch_independent(model) -> None:
    x, t = _field(), torch.tensor([[1]])
    a = rise_attribute(model, x, t, options=RISEOptions(n_masks=150, batch_size=64), seed=3)
    b = rise_attribute(model, x, t, options=RISEOptions(n_masks=150, batch_size=7), seed=3)
    c = rise_attribute(model, x, t, options=RISEOptions(n_masks=150), seed=4)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    again = rise_attribute(model, x, t, options=RISEOptions(n_masks=150, batch_size=64), seed=3)
    assert torch.equal(a, again)
    assert not torch.allclose(a, c)


def test_centering_only_shifts_by_mean_score(model) -> None:
    """Centred map = the paper's map − s̄ · Σ M / (N p); with equal masks the gap is the mean score."""
    x, t = _field(), torch.tensor([[1]])
    raw = rise_attribute(model, x, t, options=RISEOptions(n_masks=200, center=False, grid=8, p=0.5), seed=1)[0, 0]
    cen = rise_attribute(model, x, t, options=RISEOptions(n_masks=200, center=True, grid=8, p=0.5), seed=1)[0, 0]
    masks = GridMasks((64, 64), 8, 0.5, torch.Generator().manual_seed(1), torch.device("cpu"))
    msum = torch.cat([masks(MASK_CHUNK) for _ in range(3)] + [masks(8)])[:, 0].sum(0)
    shift = (raw - cen) / (msum / (200 * 0.5))
    assert float(shift.std()) < 1e-4  # one constant: the mean score
    assert 0 < float(shift.mean()) < 1


def test_masks_are_drawn_in_bounded_chunks(model) -> None:
    sizes: list[int] = []
    grid = GridMasks((64, 64), 8, 0.5, torch.Generator().manual_seed(0), torch.device("cpu"))

    def source(n: int) -> torch.Tensor:
        sizes.append(n)
        return grid(n)

    rise_attribute(model, _field(), torch.tensor([[1]]), options=RISEOptions(n_masks=300),
                   masks=source)
    assert sum(sizes) == 300 and max(sizes) <= MASK_CHUNK


def test_grid_masks_shape_range_and_keep_rate() -> None:
    m = GridMasks((50, 70), 8, 0.5, torch.Generator().manual_seed(0), torch.device("cpu"))(64)
    assert m.shape == (64, 1, 50, 70)
    assert float(m.min()) >= 0 and float(m.max()) <= 1
    assert abs(float(m.mean()) - 0.5) < 0.1


def test_region_masks_follow_labels(model) -> None:
    labels = torch.zeros(1, 64, 64, dtype=torch.long)
    labels[0, Y0 : Y0 + S, X0 : X0 + S] = 7  # the square is one region
    labels[0, 44:60, 2:18] = 3  # the distractor another
    masks = RegionMasks(labels, 0.5, 0.0, torch.Generator().manual_seed(0))
    m = masks(32)
    assert m.shape == (32, 1, 64, 64)
    # unblurred: constant on each region
    assert torch.all(m[:, 0, Y0 : Y0 + S, X0 : X0 + S] == m[:, 0, Y0 : Y0 + 1, X0 : X0 + 1])
    a = rise_attribute(model, _field(), torch.tensor([[1]]), options=RISEOptions(n_masks=200),
                       masks=RegionMasks(labels, 0.5, 1.0, torch.Generator().manual_seed(0)))[0, 0]
    assert _inside(a) > 0.8


def test_slic_labels() -> None:
    x = _field()[0].numpy()
    lab = slic_labels(x, n_segments=30)
    assert lab.shape == (64, 64) and lab.dtype == np.int64
    assert 5 <= len(np.unique(lab)) <= 100


def test_bad_options() -> None:
    with pytest.raises(ValueError, match="p=1.5"):
        validate_options(RISEOptions(p=1.5), "RISE")
    with pytest.raises(ValueError, match="p=1"):
        validate_options(RISEOptions(p=1.0), "RISE")  # p < 1: keeping every cell explains nothing
    with pytest.raises(ValueError, match="needs regions"):
        validate_options(RISEOptions(segmentation="labels"), "RISE")
    with pytest.raises(ValueError, match="needs masks"):
        rise_attribute(lambda x: x.mean(dim=(2, 3))[:, :2], _field(), torch.tensor([[1]]),
                       options=RISEOptions(segmentation="slic"))


def test_low_level_defaults_are_the_options_defaults(model) -> None:
    """rise_attribute without options runs RISEOptions() (e.g. centred), not defaults of its own."""
    x, t = _field(), torch.tensor([[1]])
    default = rise_attribute(model, x, t, seed=2)
    same = rise_attribute(model, x, t, options=RISEOptions(center=RISEOptions().center), seed=2)
    flipped = rise_attribute(model, x, t, options=RISEOptions(center=not RISEOptions().center), seed=2)
    assert torch.equal(default, same) and not torch.allclose(default, flipped)


def test_stops_when_converged_and_records_masks(model) -> None:
    """A loose tolerance stops at a round boundary; the map is the one of that many masks."""
    x, t = _field(), torch.tensor([[1]])
    stats: dict = {}
    seen: list[tuple[int, int]] = []
    a = rise_attribute(model, x, t, options=RISEOptions(n_masks=4000, tolerance=0.5), seed=5,
                       stats=stats, progress=lambda d, n: seen.append((d, n)))
    used = int(stats["masks_used"])
    assert stats["converged"] == 1.0 and stats["noise_ratio"] < 0.5
    assert 2 * ROUND <= used < 4000 and used % ROUND == 0
    assert seen[-1] == (used, used) and all(n in (4000, used) for _, n in seen)
    same = rise_attribute(model, x, t, options=RISEOptions(n_masks=used, tolerance=0.0), seed=5)
    torch.testing.assert_close(a, same, rtol=1e-5, atol=1e-6)
    assert _inside(a[0, 0]) > 0.5


def test_cap_and_zero_tolerance_use_every_mask(model) -> None:
    x, t = _field(), torch.tensor([[1]])
    for opts in (RISEOptions(n_masks=600, tolerance=1e-9), RISEOptions(n_masks=600, tolerance=0.0)):
        stats: dict = {}
        rise_attribute(model, x, t, options=opts, stats=stats)
        assert stats["masks_used"] == 600 and stats["converged"] == 0.0


def test_convergence_waits_for_every_field(model) -> None:
    """Two fields of two tiles: the noise ratio is one per (field, target), and all must pass."""
    x = torch.cat([_field(), torch.zeros_like(_field()), _field(), _field()])
    ratios: list[torch.Tensor] = []
    stats: dict = {}
    rise_attribute(model, x, torch.ones(4, 1, dtype=torch.long), options=RISEOptions(
        n_masks=768, tolerance=0.0), stats=stats, tiles_per_field=2,
        on_round=lambda n, maps, r: ratios.append(r))
    assert [tuple(r.shape) for r in ratios] == [(2, 1)]  # one check, at 512 masks
    assert stats["masks_used"] == 768
    with pytest.raises(ValueError, match="whole fields"):
        rise_attribute(model, x[:3], torch.ones(3, 1, dtype=torch.long), tiles_per_field=2)


def _estimated_and_actual_noise(model, grid: int, p: float) -> tuple[float, float]:
    """Mean estimated noise ÷ variance at 512 masks, and the maps' actual scatter over 16 seeds."""
    seen: list[tuple[torch.Tensor, float]] = []
    for seed in range(16):  # n_masks 768: one check, at 512 masks
        rise_attribute(model, _field(), torch.tensor([[1]]), seed=seed,
                       options=RISEOptions(n_masks=768, tolerance=0.0, grid=grid, p=p),
                       on_round=lambda n, m, r: seen.append((m[0, 0].clone(), float(r.max()))))
    maps = torch.stack([m for m, _ in seen])
    actual = float(maps.var(dim=0).mean() / maps.var(dim=(1, 2)).mean())
    return float(np.mean([r for _, r in seen])), actual


def test_noise_estimate_matches_the_spread_over_seeds(model) -> None:
    """The estimated noise ÷ variance agrees with the map's actual scatter between mask seeds.

    The centred map is a sample covariance of score and mask, so its per-mask terms use
    M − M̄; with M alone the noise came out 1.2× (p 0.1) to 3× (p 0.5) too high.
    """
    for grid, p in ((16, 0.1), (8, 0.5)):
        estimated, actual = _estimated_and_actual_noise(model, grid, p)
        assert 0.85 < estimated / actual < 1.15, (grid, p, estimated, actual)


def test_stopped_map_is_as_close_to_the_capped_map_as_the_tolerance_says(model) -> None:
    """At tolerance τ the stopped map lies within τ·variance of the 4000-mask map, early."""
    x, t = _field(), torch.tensor([[1]])
    stats: dict = {}
    a = rise_attribute(model, x, t, options=RISEOptions(n_masks=4000, tolerance=0.05, grid=8, p=0.5),
                       seed=1, stats=stats)
    cap = rise_attribute(model, x, t, options=RISEOptions(n_masks=4000, tolerance=0.0, grid=8, p=0.5),
                         seed=1)
    assert stats["converged"] == 1.0 and stats["masks_used"] <= 1024  # the old estimate: 2560
    assert float(((a - cap) ** 2).mean() / cap.var()) < 0.05
