"""RISE's grid masks (Petsiuk et al. 2018), made with two small matrix products per mask.

A mask is a random binary s×s grid (cells kept with probability p), upsampled
bilinearly to (s+1)·cell pixels per side and cropped at a random shift of less than
one cell. Bilinear upsampling is separable and linear, so the upsampled grid is
``R_y @ cells @ R_xᵀ`` with R the (U, s) one-dimensional interpolation matrix, and a
crop only takes rows of R: ``mask_i = R_y[dy_i : dy_i + H] @ cells_i @ R_x[dx_i : dx_i + W]ᵀ``.

Written here, not taken from a library, because the direct way (``F.interpolate``
of every grid to the full (s+1)·cell size, then one Python-level crop per mask) made
mask generation cost as much as the forward passes on a GPU (RISE at 3.9× its forward
floor on an H200, 128² tiles, batch 128). The products need only (n, H, s) and
(n, s, W) slices besides the (n, H, W) masks themselves, on any device.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def interpolation_matrix(cells: int, size: int) -> torch.Tensor:
    """(size, cells): row i holds the weights that 1-D linear upsampling (as
    ``F.interpolate(mode="linear", align_corners=False)``) gives pixel i from each cell."""
    eye = torch.eye(cells).unsqueeze(0)  # (1, cells, cells): each cell's unit impulse
    return F.interpolate(eye, size=size, mode="linear", align_corners=False)[0].T.contiguous()


class GridMasks:
    """The paper's masks, (n, 1, H, W) in [0, 1] on ``device``; the random draws (cells,
    then y shifts, then x shifts) come from the seeded CPU ``generator``."""

    def __init__(self, size: tuple[int, int], grid: int, p: float, generator: torch.Generator,
                 device: torch.device) -> None:
        self.H, self.W = size
        self.grid, self.p, self.gen, self.device = grid, p, generator, device
        self.cell = (-(-self.H // grid), -(-self.W // grid))  # ceil(H / s), ceil(W / s)
        self.ry = interpolation_matrix(grid, (grid + 1) * self.cell[0]).to(device)
        self.rx = interpolation_matrix(grid, (grid + 1) * self.cell[1]).to(device)

    def __call__(self, n: int) -> torch.Tensor:
        s, (ch, cw) = self.grid, self.cell
        cells = (torch.rand(n, s, s, generator=self.gen) < self.p).float().to(self.device)
        dy = torch.randint(0, ch, (n,), generator=self.gen).to(self.device)
        dx = torch.randint(0, cw, (n,), generator=self.gen).to(self.device)
        rows = self.ry[dy[:, None] + torch.arange(self.H, device=self.device)]  # (n, H, s)
        cols = self.rx[dx[:, None] + torch.arange(self.W, device=self.device)]  # (n, W, s)
        return torch.bmm(torch.bmm(rows, cells), cols.transpose(1, 2)).unsqueeze(1)
