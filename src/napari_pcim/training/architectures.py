"""The demo CNN architectures: small, scriptable, cheap classifiers for HCI fields.

Both map a normalised float32 (B, C, H, W) batch to logits (B, K) and end with a
global average pool, so they accept any input size (the bundled models are trained
at 128×128). They stay small (~60-80 k parameters, well under 1 MB as TorchScript)
and cheap (~55-60 M multiply-adds per 128² field) because the explainers evaluate
them thousands of times on a CPU.

- :class:`VGGNet`: VGG-like stacks of 3×3 conv + ReLU and 2×2 max-pool; no BatchNorm.
- :class:`ResNet`: ResNet-like basic blocks (two 3×3 convs with BatchNorm and an
  identity or 1×1 projection shortcut).
- :class:`VGG16Net` (``"vgg16"``): VGG16's layout — 13 conv3×3 + BatchNorm + ReLU layers
  in 5 stages (2, 2, 3, 3, 3) with 4 max-pools — at 1/16 of VGG16's widths (4 … 32).
- :class:`ResNet18Net` (``"resnet18"``): ResNet-18's layout — stem, 4 stages of 2 basic
  blocks (16 convs + head) — at 1/16 of its widths (4 … 32).

The two deep ones are "closer to the paper's models" (PCIM was published on VGG16 and
ResNet-18) while staying cheap enough to train on a 2-core CPU in minutes.

:func:`build_model` builds one by name (``"vgg"``, ``"resnet"``, ``"vgg16"``, ``"resnet18"``).
"""

from __future__ import annotations

import torch
from torch import nn

ARCHITECTURES = ("vgg", "resnet", "vgg16", "resnet18")


class VGGNet(nn.Module):
    """Conv3×3+ReLU blocks separated by 2×2 max-pools, global average pool, linear head."""

    def __init__(
        self, in_channels: int = 4, num_classes: int = 2, widths: tuple[int, ...] = (16, 32, 64, 64)
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        prev = in_channels
        for i, width in enumerate(widths):
            if i > 0:
                layers.append(nn.MaxPool2d(2))
            layers += [nn.Conv2d(prev, width, 3, padding=1), nn.ReLU(inplace=False)]
            prev = width
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(prev, num_classes)
        # He initialisation: without BatchNorm, torch's default init shrinks the signal
        # layer by layer, and subtle phenotypes (worm shape) then never start to learn.
        for module in self.features:
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.features(x)).flatten(1))


class BasicBlock(nn.Module):
    """Two 3×3 conv+BatchNorm layers with a shortcut (1×1 conv when the shape changes)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=False)
        if stride != 1 or in_channels != out_channels:
            self.shortcut: nn.Module = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    """Stem conv + max-pool, ``blocks_per_stage`` basic blocks per width (the first with
    stride 2 where the width grows), GAP, linear."""

    def __init__(
        self, in_channels: int = 4, num_classes: int = 2, widths: tuple[int, ...] = (16, 32, 64),
        blocks_per_stage: int = 1,
    ) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(inplace=False),
            nn.MaxPool2d(2),
        )
        blocks: list[nn.Module] = []
        prev = widths[0]
        for i, width in enumerate(widths):
            blocks.append(BasicBlock(prev, width, stride=1 if i == 0 else 2))
            blocks += [BasicBlock(width, width) for _ in range(blocks_per_stage - 1)]
            prev = width
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(prev, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.blocks(self.stem(x))).flatten(1))


def build_model(arch: str, in_channels: int = 4, num_classes: int = 2, global_pool: str = "avg") -> nn.Module:
    """A fresh (untrained) model: ``arch`` is ``"vgg"`` or ``"resnet"``.

    ``global_pool="max"`` (VGG only) gives :class:`VGGMaxNet`, whose head sees the
    strongest response anywhere in the field: it learns sparse shape cues (a straight
    worm among curved ones) that an average pool dilutes.
    """
    if global_pool not in ("avg", "max") or (global_pool == "max" and arch != "vgg"):
        raise ValueError(f"global_pool must be 'avg' (or 'max' for vgg), got {global_pool!r} for {arch!r}")
    if arch == "vgg":
        return (VGGMaxNet if global_pool == "max" else VGGNet)(in_channels, num_classes)
    if arch == "resnet":
        return ResNet(in_channels, num_classes)
    if arch == "vgg16":
        return VGG16Net(in_channels, num_classes)
    if arch == "resnet18":
        return ResNet18Net(in_channels, num_classes)
    raise ValueError(f"unknown architecture {arch!r}; expected one of {list(ARCHITECTURES)}")


def count_macs(model: nn.Module, size: int = 128, in_channels: int = 4) -> int:
    """Multiply-adds of the conv and linear layers for one (in_channels, size, size) input."""
    total = 0

    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal total
        if isinstance(module, nn.Conv2d):
            k = module.kernel_size[0] * module.kernel_size[1] * module.in_channels // module.groups
            total += output.numel() * k
        elif isinstance(module, nn.Linear):
            total += output.numel() * module.in_features

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, in_channels, size, size))
    finally:
        for h in handles:
            h.remove()
    return total


class VGGMaxNet(VGGNet):
    """:class:`VGGNet` with a global max pool instead of the average pool."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.amax(self.features(x), dim=(2, 3)))


#: VGG16's configuration D at 1/16 width: conv widths per stage, a 2×2 max-pool between stages.
VGG16_STAGES: tuple[tuple[int, ...], ...] = ((4, 4), (8, 8), (16, 16, 16), (32, 32, 32), (32, 32, 32))


class VGG16Net(nn.Module):
    """13 conv3×3 + BatchNorm + ReLU layers (VGG16 layout, narrow), GAP, linear head."""

    def __init__(self, in_channels: int = 4, num_classes: int = 2,
                 stages: tuple[tuple[int, ...], ...] = VGG16_STAGES) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        prev = in_channels
        for i, stage in enumerate(stages):
            if i > 0:
                layers.append(nn.MaxPool2d(2))
            for width in stage:
                layers += [nn.Conv2d(prev, width, 3, padding=1, bias=False), nn.BatchNorm2d(width),
                           nn.ReLU(inplace=False)]
                prev = width
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(prev, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.features(x)).flatten(1))


class ResNet18Net(ResNet):
    """ResNet-18 layout, narrow: stem conv + max-pool, 4 stages × 2 basic blocks, GAP, linear."""

    def __init__(self, in_channels: int = 4, num_classes: int = 2,
                 widths: tuple[int, ...] = (4, 8, 16, 32)) -> None:
        super().__init__(in_channels, num_classes, widths, blocks_per_stage=2)
