"""Style transform network of Johnson, Alahi & Fei-Fei (ECCV 2016), with instance norm.

Architecture per the paper's supplementary material, with two changes the field settled on:
instance norm (Ulyanov et al. 2016) instead of batch norm, and nearest-neighbour upsampling
followed by a convolution instead of fractionally-strided convolutions (no checkerboard
artefacts; Odena et al. 2016).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn


class ConvLayer(nn.Sequential):
    """Reflection padding then a convolution, so borders carry no zero-padding seams."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1):
        super().__init__(
            nn.ReflectionPad2d(kernel_size // 2),
            nn.Conv2d(in_channels, out_channels, kernel_size, stride),
        )


NORMS = ("instance", "batch", "none")


def norm_layer(kind: str, channels: int) -> nn.Module:
    """"instance": InstanceNorm2d (affine; style nets), "batch": BatchNorm2d (the paper's SR net: at
    inference a fixed affine map, so the image's own brightness and contrast survive), "none"."""
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {kind!r}; known: {', '.join(NORMS)}")


class ConvNormReLU(nn.Sequential):
    """ConvLayer → norm (instance by default) → ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 norm: str = "instance"):
        super().__init__(
            ConvLayer(in_channels, out_channels, kernel_size, stride),
            norm_layer(norm, out_channels),
            nn.ReLU(inplace=True),
        )


class UpsampleConvNormReLU(nn.Sequential):
    """Nearest ×2 upsample → ConvNormReLU (stands in for a stride-1/2 convolution)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, norm: str = "instance"):
        super().__init__(
            nn.Upsample(scale_factor=2, mode="nearest"),
            ConvNormReLU(in_channels, out_channels, kernel_size, norm=norm),
        )


class ResidualBlock(nn.Module):
    """Two 3×3 ConvLayers, each followed by a norm; ReLU after the first only, none after the add."""

    def __init__(self, channels: int, norm: str = "instance"):
        super().__init__()
        self.body = nn.Sequential(
            ConvLayer(channels, channels, 3), norm_layer(norm, channels), nn.ReLU(inplace=True),
            ConvLayer(channels, channels, 3), norm_layer(norm, channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def pad_to_multiple(x: torch.Tensor, multiple: int, min_size: int) -> torch.Tensor:
    """Edge-pad (replicate) the bottom/right of (N, C, H, W) so H and W are multiples of ``multiple``, at least ``min_size``."""
    h, w = x.shape[-2:]
    pad_h = max((-h) % multiple, min_size - h)
    pad_w = max((-w) % multiple, min_size - w)
    if pad_h or pad_w:
        x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
    return x


def reflect_margin(x: torch.Tensor, margin: int) -> torch.Tensor:
    """Reflection-pad every side of (N, C, H, W) by ``margin``; sides of ``margin`` pixels or fewer
    are edge-padded (replicate) first, since reflection needs more."""
    if not margin:
        return x
    h, w = x.shape[-2:]
    # No branch on the size here, so a dynamic-shape export keeps this for every size.
    small = (0, max(0, margin + 1 - w), 0, max(0, margin + 1 - h))
    return F.pad(F.pad(x, small, mode="replicate"), (margin, margin, margin, margin), mode="reflect")


def to_unit_range(x: torch.Tensor) -> torch.Tensor:
    """The paper's scaled tanh output, mapped to the [0, 1] image range."""
    return (torch.tanh(x) + 1.0) * 0.5


@dataclass(frozen=True)
class TransformNetConfig:
    """Architecture of a TransformNet: ``width`` is the first conv's channels (32 in the paper).

    ``pixel_shuffle``: the CPU-fast variant. The full-resolution layers (9×9 conv to ``width``, then
    the stride-2 conv to 2·width; at the end the upsampling conv to ``width``, then the 9×9 conv to
    RGB) become PixelUnshuffle(2) → 3×3 conv to 2·width, and 3×3 conv to 12 → PixelShuffle(2).
    No feature map is held at full resolution; the half- and quarter-resolution stages keep the
    paper's channels (2·width, 4·width).

    ``margin``: at inference (eval mode) the input is reflection-padded by this many pixels on
    every side and the output cropped back. Perceptual-loss training leaves a band of strong strokes
    along the image edges (the style loss rewards it); the margin moves that band off the picture.
    Training runs without it. bench/experiments/border-margin/results/ has the measurements behind 16.
    """

    width: int = 32
    blocks: int = 5
    pixel_shuffle: bool = False
    margin: int = 0

    def __post_init__(self):
        if self.width < 1 or self.blocks < 0 or self.margin < 0:
            raise ValueError(f"need width ≥ 1, blocks ≥ 0 and margin ≥ 0, got {self}")

    def to_dict(self) -> dict:
        return asdict(self)


class TransformNet(nn.Module):
    """Feed-forward style transfer network (Johnson et al. 2016, supplementary Table 1).

    9×9 conv w → 3×3 conv 2w /2 → 3×3 conv 4w /2 → ``blocks`` residual blocks (4w)
    → up ×2 conv 2w → up ×2 conv w → 9×9 conv 3 → scaled tanh. The paper has w = 32.
    ``config.pixel_shuffle`` swaps the full-resolution layers for pixel (un)shuffles (see the config).

    Input and output: float RGB, (N, 3, H, W), values in [0, 1]. Any H and W work: in eval mode the
    input gets its reflection ``config.margin``; then it is edge-padded (replicate) to a multiple of 4
    (the encoder's stride), at least 8, and the output cropped back.
    """

    stride = 4
    min_size = 8  # the 9×9 reflection padding needs at least 5 pixels at full resolution

    def __init__(self, config: TransformNetConfig = TransformNetConfig()):
        super().__init__()
        self.config = config
        w = config.width
        if config.pixel_shuffle:
            full_res_in = [nn.PixelUnshuffle(2), ConvNormReLU(3 * 4, 2 * w, 3)]
            full_res_out = [ConvLayer(2 * w, 3 * 4, 3), nn.PixelShuffle(2)]
        else:
            full_res_in = [ConvNormReLU(3, w, 9), ConvNormReLU(w, 2 * w, 3, stride=2)]
            full_res_out = [UpsampleConvNormReLU(2 * w, w), ConvLayer(w, 3, 9)]
        self.encoder = nn.Sequential(*full_res_in, ConvNormReLU(2 * w, 4 * w, 3, stride=2))
        self.residuals = nn.Sequential(*(ResidualBlock(4 * w) for _ in range(config.blocks)))
        self.decoder = nn.Sequential(UpsampleConvNormReLU(4 * w, 2 * w), *full_res_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        margin = 0 if self.training else self.config.margin
        x = pad_to_multiple(reflect_margin(x, margin), self.stride, self.min_size)
        y = to_unit_range(self.decoder(self.residuals(self.encoder(x))))
        return y[..., margin:margin + h, margin:margin + w]


def transform_net(*, width: int = 32, blocks: int = 5, pixel_shuffle: bool = False, margin: int = 0) -> TransformNet:
    """The paper's style network (width 32, 5 blocks); smaller widths, and ``pixel_shuffle``, give
    the real-time variants; ``margin``: the inference border margin (see TransformNetConfig)."""
    return TransformNet(TransformNetConfig(width=width, blocks=blocks, pixel_shuffle=pixel_shuffle, margin=margin))
