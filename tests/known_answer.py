"""The known-answer classifier shared by the explainer tests.

Its "treated" logit is the mean marker (channel 2, normalised) inside one fixed square,
so a faithful attribution map must put its mass inside that square — and not on an
equally bright distractor blob elsewhere.
"""

from __future__ import annotations

import torch

Y0, X0, S = 16, 28, 24  # the square the model looks at, in 64 × 64 images


class SquareMarker(torch.nn.Module):
    """Logit of "treated" = gain · (mean marker inside the square − 1.5)."""

    def __init__(self, y0: int = Y0, x0: int = X0, s: int = S) -> None:
        super().__init__()
        self.y0, self.x0, self.s = y0, x0, s
        self.gain = torch.nn.Parameter(torch.ones(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v = x[:, 2, self.y0 : self.y0 + self.s, self.x0 : self.x0 + self.s].mean(dim=(1, 2))
        z = self.gain * (v - 1.5)
        return torch.stack([-z, z], dim=1)


def known_answer_field(seed: int = 0) -> torch.Tensor:
    """Normalised (1, 4, 64, 64): noise, a bright marker in the square and in a distractor."""
    g = torch.Generator().manual_seed(seed)
    x = 0.3 * torch.randn(1, 4, 64, 64, generator=g)
    x[:, 2, Y0 : Y0 + S, X0 : X0 + S] += 3.0
    x[:, 2, 44:60, 2:18] += 3.0  # just as bright, but the model ignores it
    return x
