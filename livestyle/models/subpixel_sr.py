"""A CPU-fast super-resolution network: every convolution at the low resolution, a sub-pixel output.

The paper's ``SRNet`` upsamples its features and convolves at ×2, ×4 (and ×8): most of its
multiply-adds fall on the high-resolution grid. Here the output is a pixel shuffle (sub-pixel
convolution; Shi et al., "Real-Time Single Image and Video Super-Resolution Using an Efficient
Sub-Pixel Convolutional Neural Network", CVPR 2016) of a low-resolution convolution, added to the
bicubic upscale of the input (global residual, Kim et al., VDSR, CVPR 2016), so the work per output
pixel falls by the square of the scale.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from livestyle.models.transform import ConvLayer, ResidualBlock

FAMILY = "subpixel"  # the ``family`` value of these networks' architecture records
HEAD_KERNEL = 5  # ESPCN's first layer


@dataclass(frozen=True)
class SubpixelSRNetConfig:
    """Architecture of a SubpixelSRNet: upscaling factor (a power of two), channels, residual blocks."""

    scale: int = 4
    width: int = 32
    blocks: int = 6
    family: str = FAMILY

    def __post_init__(self):
        if self.scale < 2 or self.scale & (self.scale - 1):
            raise ValueError(f"scale must be a power of two ≥ 2, got {self.scale}")
        if self.width < 1 or self.blocks < 0:
            raise ValueError(f"width must be ≥ 1 and blocks ≥ 0, got width {self.width}, blocks {self.blocks}")
        if self.family != FAMILY:
            raise ValueError(f"unknown model family {self.family!r}")

    def to_dict(self) -> dict:
        return asdict(self)


class SubpixelSRNet(nn.Module):
    """×scale super-resolution with all convolutions at the input's resolution.

    5×5 conv → ReLU → ``blocks`` residual blocks (two 3×3 convs, no norms) → 3×3 conv to 3·scale²
    channels → pixel shuffle ×scale, added to the bicubic upscale of the input and clipped to
    [0, 1]. The last conv starts at zero, so an untrained network is exactly bicubic.

    Input: float RGB (N, 3, h, w) in [0, 1], any size (sides under 3 px are edge-padded and the
    output cropped); output (N, 3, scale·h, scale·w) in [0, 1].
    """

    min_size = HEAD_KERNEL // 2 + 1  # the head's reflection padding needs one pixel more than it pads

    def __init__(self, config: SubpixelSRNetConfig = SubpixelSRNetConfig()):
        super().__init__()
        self.config = config
        c, s = config.width, config.scale
        self.head = nn.Sequential(ConvLayer(3, c, HEAD_KERNEL), nn.ReLU(inplace=True))
        self.residuals = nn.Sequential(*(ResidualBlock(c, norm="none") for _ in range(config.blocks)))
        self.tail = ConvLayer(c, 3 * s * s, 3)
        self.shuffle = nn.PixelShuffle(s)
        nn.init.zeros_(self.tail[1].weight)  # start as exactly bicubic; training learns the correction
        nn.init.zeros_(self.tail[1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        # No branch on the size, so a dynamic-shape export keeps the pad (a zero pad for larger inputs).
        x = F.pad(x, (0, max(0, self.min_size - w), 0, max(0, self.min_size - h)), mode="replicate")
        correction = self.shuffle(self.tail(self.residuals(self.head(x))))
        bicubic = F.interpolate(x, scale_factor=self.scale, mode="bicubic", align_corners=False)
        return (bicubic + correction).clamp(0.0, 1.0)[..., :self.scale * h, :self.scale * w]

    @property
    def scale(self) -> int:
        return self.config.scale


def subpixel_sr_net(*, scale: int = 4, width: int = 32, blocks: int = 6) -> SubpixelSRNet:
    """A low-resolution-only SR network for ×``scale`` (see ``SubpixelSRNet``); the defaults are x4_fast's."""
    return SubpixelSRNet(SubpixelSRNetConfig(scale=scale, width=width, blocks=blocks))
