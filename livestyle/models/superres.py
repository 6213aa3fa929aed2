"""Single-image super-resolution network of Johnson, Alahi & Fei-Fei (ECCV 2016)."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

from .transform import ConvLayer, ConvNormReLU, ResidualBlock, UpsampleConvNormReLU, to_unit_range


@dataclass(frozen=True)
class SRNetConfig:
    """Architecture of an SRNet: upscaling factor (a power of two), channels and residual blocks."""

    scale: int = 4
    width: int = 64
    blocks: int = 4

    def __post_init__(self):
        if self.scale < 2 or self.scale & (self.scale - 1):
            raise ValueError(f"scale must be a power of two ≥ 2, got {self.scale}")

    def to_dict(self) -> dict:
        return asdict(self)


class SRNet(nn.Module):
    """Feed-forward ×scale super-resolution (Johnson et al. 2016, supplementary material).

    9×9 conv → ``blocks`` residual blocks → log2(scale) × (up ×2 conv) → 9×9 conv 3 → scaled
    tanh. The paper: 64 channels, 4 blocks; ×4 has two upsampling stages, ×8 three.

    Input: float RGB (N, 3, h, w) in [0, 1]; output (N, 3, scale·h, scale·w) in [0, 1].
    """

    def __init__(self, config: SRNetConfig = SRNetConfig()):
        super().__init__()
        self.config = config
        c = config.width
        stages = int(math.log2(config.scale))
        self.head = ConvNormReLU(3, c, 9)
        self.residuals = nn.Sequential(*(ResidualBlock(c) for _ in range(config.blocks)))
        self.upsample = nn.Sequential(*(UpsampleConvNormReLU(c, c) for _ in range(stages)))
        self.tail = ConvLayer(c, 3, 9)

    @property
    def scale(self) -> int:
        return self.config.scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return to_unit_range(self.tail(self.upsample(self.residuals(self.head(x)))))


def sr_net(*, scale: int = 4, width: int = 64, blocks: int = 4) -> SRNet:
    """The paper's SR network for ×4 or ×8 (64 channels, 4 residual blocks)."""
    return SRNet(SRNetConfig(scale=scale, width=width, blocks=blocks))
