"""A CPU-fast super-resolution network: every convolution at the low resolution, a sub-pixel output.

The paper's ``SRNet`` upsamples its features and convolves at ×2, ×4 (and ×8): most of its
multiply-adds fall on the high-resolution grid. Here the output is a pixel shuffle (sub-pixel
convolution; Shi et al., "Real-Time Single Image and Video Super-Resolution Using an Efficient
Sub-Pixel Convolutional Neural Network", CVPR 2016) of a low-resolution convolution, added to the
bicubic upscale of the input (global residual, Kim et al., VDSR, CVPR 2016), so the work per output
pixel falls by the square of the scale. The bicubic upscale itself is computed the same way, as a
fixed convolution at the low resolution onto the same sub-pixel channels: ONNX Runtime's cubic
Resize on the high-resolution grid took about as long as the whole network (fast-sr/findings.md).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from livestyle.models.transform import ConvLayer, ResidualBlock

FAMILY = "subpixel"  # the ``family`` value of these networks' architecture records
HEAD_KERNEL = 5  # ESPCN's first layer
CUBIC_A = -0.75  # Keys' cubic convolution parameter as PyTorch's (and ONNX's pytorch_half_pixel) bicubic uses


def _cubic(distance: float) -> float:
    """Keys' cubic convolution weight at ``distance`` (< 2) from the sample, A = CUBIC_A."""
    d, a = abs(distance), CUBIC_A
    if d <= 1:
        return (a + 2) * d ** 3 - (a + 3) * d ** 2 + 1
    return a * d ** 3 - 5 * a * d ** 2 + 8 * a * d - 4 * a


def bicubic_phase_kernels(scale: int) -> torch.Tensor:
    """Bicubic ×``scale`` upsampling as float64 kernels (scale², 5, 5) on an input edge-padded by 2 px.

    Kernel ``p·scale + q`` gives output pixel (scale·i + p, scale·j + q) from the 5×5 window at (i, j)
    of the padded input: ``F.interpolate(mode="bicubic", align_corners=False)``, whose taps at the
    border clamp to the edge just as the edge padding does.
    """
    taps = torch.zeros(scale, 5, dtype=torch.float64)
    for phase in range(scale):
        position = (phase + 0.5) / scale - 0.5  # output pixel's centre in input pixels, from input pixel i
        first = math.floor(position)  # -1 or 0: the four taps are at first - 1 … first + 2
        frac = position - first
        for k, distance in enumerate((1 + frac, frac, 1 - frac, 2 - frac)):
            taps[phase, first + 1 + k] = _cubic(distance)  # +2 for the padding, −1 for the first tap
    return torch.einsum("pa,qb->pqab", taps, taps).reshape(scale * scale, 5, 5)


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
    channels, plus the bicubic upscale of the input in the same sub-pixel layout (a fixed 5×5
    per-channel convolution, ``bicubic_phase_kernels``) → pixel shuffle ×scale → clipped to [0, 1].
    The last conv starts at zero, so an untrained network is bicubic (to float rounding).

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
        nn.init.zeros_(self.tail[1].weight)  # start as bicubic; training learns the correction
        nn.init.zeros_(self.tail[1].bias)
        # Not a weight: fixed, and left out of model files (persistent=False).
        kernels = bicubic_phase_kernels(s).float().repeat(3, 1, 1).unsqueeze(1)  # (3·s², 1, 5, 5)
        self.register_buffer("bicubic", kernels, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        # No branch on the size, so a dynamic-shape export keeps the pad (a zero pad for larger inputs).
        x = F.pad(x, (0, max(0, self.min_size - w), 0, max(0, self.min_size - h)), mode="replicate")
        bicubic = F.conv2d(F.pad(x, (2, 2, 2, 2), mode="replicate"), self.bicubic, groups=3)
        y = self.shuffle(self.tail(self.residuals(self.head(x))) + bicubic)
        return y.clamp(0.0, 1.0)[..., :self.scale * h, :self.scale * w]

    @property
    def scale(self) -> int:
        return self.config.scale


def subpixel_sr_net(*, scale: int = 4, width: int = 32, blocks: int = 6) -> SubpixelSRNet:
    """A low-resolution-only SR network for ×``scale`` (see ``SubpixelSRNet``); the defaults are x4_fast's."""
    return SubpixelSRNet(SubpixelSRNetConfig(scale=scale, width=width, blocks=blocks))
