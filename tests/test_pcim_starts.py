"""PCIM's random starts: per-pixel contrast of the chosen size (``start_scale``), seeded per item."""

from __future__ import annotations

import pytest
import torch
from known_answer import X0, Y0, S, SquareMarker
from known_answer import known_answer_field as _field

from napari_pcim.explainers.pcim import PCIMOptions, pcim_attribute
from napari_pcim.explainers.pcim_starts import start_logits


def _neighbour_correlation(plane: torch.Tensor) -> float:
    """Correlation of horizontally adjacent values of a (H, W) plane."""
    a, b = plane[:, :-1].flatten(), plane[:, 1:].flatten()
    return float(torch.corrcoef(torch.stack([a, b]))[0, 1])


def test_independent_starts_keep_their_seeded_draws() -> None:
    """``start_scale=0``: the draws of earlier releases (maps computed before stay valid)."""
    w = start_logits([5, 9], 3, 0.5, 0.0, (1, 1, 16, 16))
    for row, seed in zip(w, (5, 9)):
        expect = torch.randn(256, generator=torch.Generator().manual_seed(seed * 131 + 3)) * 0.5
        torch.testing.assert_close(row, expect)


@pytest.mark.parametrize("scale", [2.0, 4.0])
def test_smooth_starts_keep_the_noise_per_pixel_and_correlate_neighbours(scale) -> None:
    """Blurred draws are rescaled to ``start_noise`` per pixel; neighbours correlate as a
    Gaussian of σ = scale predicts (exp(−1/(4σ²)) at one pixel); channels stay independent."""
    noise = 0.75
    w = start_logits(list(range(8)), 0, noise, scale, (2, 3, 96, 96)).view(8 * 2, 3, 96, 96)
    inner = w[..., 16:-16, 16:-16]  # away from the reflected border
    assert float(inner.std()) == pytest.approx(noise, rel=0.1)
    expected = torch.exp(torch.tensor(-1 / (4 * scale**2))).item()
    assert _neighbour_correlation(inner[0, 0]) == pytest.approx(expected, abs=0.05)
    channels = torch.corrcoef(inner[:, :2].transpose(0, 1).reshape(2, -1))[0, 1]
    assert abs(float(channels)) < 0.05
    independent = start_logits(list(range(8)), 0, noise, 0.0, (2, 3, 96, 96)).view(16, 3, 96, 96)
    assert abs(_neighbour_correlation(independent[0, 0])) < 0.05


@pytest.mark.parametrize("isolation", ["pixel", "pixel-channel"])
def test_smooth_starts_are_seeded_per_item_and_still_find_the_square(isolation) -> None:
    """Same field, target and seed → the same map, whatever the batching; the map differs
    from independent starts and keeps its mass in the square the model reads."""
    model = torch.jit.script(SquareMarker(Y0, X0, S))
    x = torch.cat([_field(), _field(1)])
    t = torch.tensor([[1], [1]])
    opts = PCIMOptions(starts=6, start_noise=0.5, start_scale=3.0, smooth=0, isolation=isolation)
    together = pcim_attribute(model, x, t, options=opts, seed=2)
    alone = pcim_attribute(model, x[1:], t[1:], options=opts, seed=2)
    torch.testing.assert_close(together[1:], alone, rtol=0, atol=1e-6)
    independent = pcim_attribute(model, x, t, seed=2,
                                 options=PCIMOptions(**{**opts.__dict__, "start_scale": 0.0}))
    assert not torch.allclose(together, independent, atol=1e-4)
    m = together[0, 0].clamp(min=0)
    assert float(m[Y0:Y0 + S, X0:X0 + S].sum() / m.sum()) > 0.5


def test_start_scale_is_checked_like_every_option() -> None:
    with pytest.raises(ValueError, match="start_scale"):
        pcim_attribute(torch.jit.script(SquareMarker(Y0, X0, S)), _field(), torch.tensor([[1]]),
                       options=PCIMOptions(start_scale=-1.0))
