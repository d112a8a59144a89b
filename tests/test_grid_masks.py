"""RISE's grid masks: the matrix-product construction equals the paper's definition."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from napari_pcim.explainers.grid_masks import GridMasks


def _by_definition(size, grid, p, seed, n):
    """The paper's recipe, literally: upsample each binary grid, then crop at its shift."""
    gen = torch.Generator().manual_seed(seed)
    H, W = size
    ch, cw = -(-H // grid), -(-W // grid)
    cells = (torch.rand(n, grid, grid, generator=gen) < p).float()
    dy = torch.randint(0, ch, (n,), generator=gen)
    dx = torch.randint(0, cw, (n,), generator=gen)
    up = F.interpolate(cells[:, None], size=((grid + 1) * ch, (grid + 1) * cw), mode="bilinear",
                       align_corners=False)
    return torch.stack([up[i, :, y:y + H, x:x + W] for i, (y, x) in enumerate(zip(dy, dx))])


@pytest.mark.parametrize("size,grid", [((128, 128), 16), ((100, 77), 7), ((64, 64), 1),
                                       ((32, 48), 32)])
def test_grid_masks_equal_the_upsample_then_crop_definition(size, grid):
    masks = GridMasks(size, grid, 0.3, torch.Generator().manual_seed(5), torch.device("cpu"))(40)
    expected = _by_definition(size, grid, 0.3, 5, 40)
    assert masks.shape == (40, 1, *size)
    torch.testing.assert_close(masks, expected, atol=1e-6, rtol=0)
    assert masks.min() >= 0 and masks.max() <= 1 + 1e-6


def test_grid_masks_keep_about_p_and_continue_the_random_stream():
    make = GridMasks((64, 64), 8, 0.25, torch.Generator().manual_seed(1), torch.device("cpu"))
    first, second = make(500), make(500)
    assert abs(float(first.mean()) - 0.25) < 0.02
    assert not torch.equal(first, second)  # the second call draws new masks
    again = GridMasks((64, 64), 8, 0.25, torch.Generator().manual_seed(1), torch.device("cpu"))
    torch.testing.assert_close(again(500), first)  # same seed, same masks
