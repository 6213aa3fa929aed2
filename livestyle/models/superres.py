"""Single-image super-resolution network of Johnson, Alahi & Fei-Fei (ECCV 2016)."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from livestyle.models.transform import (NORMS, ConvLayer, ConvNormReLU, ResidualBlock, UpsampleConvNormReLU,
    to_unit_range)


@dataclass(frozen=True)
class SRNetConfig:
    """Architecture of an SRNet: upscaling factor (a power of two), channels, residual blocks, norm."""

    scale: int = 4
    width: int = 64
    blocks: int = 4
    norm: str = "none"  # "batch": the paper's; never "instance", which discards each image's brightness and contrast
    residual: bool = True  # add the bicubic upscale of the input (VDSR); False: the paper's plain tanh output

    def __post_init__(self):
        if self.scale < 2 or self.scale & (self.scale - 1):
            raise ValueError(f"scale must be a power of two ≥ 2, got {self.scale}")
        if self.norm not in NORMS:
            raise ValueError(f"unknown norm {self.norm!r}; known: {', '.join(NORMS)}")

    def to_dict(self) -> dict:
        return asdict(self)


class SRNet(nn.Module):
    """Feed-forward ×scale super-resolution (Johnson et al. 2016, supplementary material).

    9×9 conv → ``blocks`` residual blocks → log2(scale) × (up ×2 conv) → 9×9 conv 3 → scaled
    tanh. The paper: 64 channels, 4 blocks, batch norm; ×4 has two upsampling stages, ×8 three.
    In eval mode every batch norm is a fixed per-channel affine map (folded into its convolution
    by ``livestyle.models.rewrites``), so whole frames and tiles see the same function.

    Two changes from the paper, both defaults, both measured to train better here (bench/README.md):
    ``residual``: the network predicts a correction to the bicubic upscale of its input (global
    residual learning, Kim et al., VDSR, CVPR 2016), the sum clipped to [0, 1], its last conv
    zero-initialised so that training starts from bicubic; and ``norm="none"`` (EDSR, Lim et al.
    2017, also drops it). ``sr_net(norm="batch", residual=False)`` is the paper's network.

    Input: float RGB (N, 3, h, w) in [0, 1], any size (sides under 5 px are edge-padded and the
    output cropped); output (N, 3, scale·h, scale·w) in [0, 1].
    """

    min_size = 5

    def __init__(self, config: SRNetConfig = SRNetConfig()):
        super().__init__()
        self.config = config
        c = config.width
        stages = int(math.log2(config.scale))
        norm = config.norm
        self.head = ConvNormReLU(3, c, 9, norm=norm)
        self.residuals = nn.Sequential(*(ResidualBlock(c, norm=norm) for _ in range(config.blocks)))
        self.upsample = nn.Sequential(*(UpsampleConvNormReLU(c, c, norm=norm) for _ in range(stages)))
        self.tail = ConvLayer(c, 3, 9)
        if config.residual:  # start as exactly bicubic; training learns the correction
            nn.init.zeros_(self.tail[1].weight)
            nn.init.zeros_(self.tail[1].bias)

    @property
    def scale(self) -> int:
        return self.config.scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        # The head's 9×9 reflection padding needs sides of 5 px: edge-pad smaller inputs, crop after.
        # No branch on the size, so a dynamic-shape export keeps it (a zero pad for larger inputs).
        x = F.pad(x, (0, max(0, self.min_size - w), 0, max(0, self.min_size - h)), mode="replicate")
        y = self.tail(self.upsample(self.residuals(self.head(x))))
        if not self.config.residual:
            return to_unit_range(y)[..., :self.scale * h, :self.scale * w]
        bicubic = F.interpolate(x, scale_factor=self.scale, mode="bicubic", align_corners=False)
        return (bicubic + y).clamp(0.0, 1.0)[..., :self.scale * h, :self.scale * w]


def sr_net(*, scale: int = 4, width: int = 64, blocks: int = 4, norm: str = "none", residual: bool = True) -> SRNet:
    """The paper's SR network for ×4 or ×8 (64 channels, 4 residual blocks), by default with a global
    bicubic skip and no norms (see ``SRNet``)."""
    return SRNet(SRNetConfig(scale=scale, width=width, blocks=blocks, norm=norm, residual=residual))
