"""pytorch/examples ``fast_neural_style`` ``TransformerNet``, layer for layer, for imported models.

It is Johnson et al.'s network with instance norm, reflection padding and nearest-upsample
convolutions, taking and giving 0–255 values with no output non-linearity. The state_dict keys
match theirs (``conv1.conv2d.weight``, ``in1.weight``, ``res1.conv1.conv2d.weight``, …), so a
checkpoint loads unchanged; the network converts to and from livestyle's [0, 1] at its boundary.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from livestyle.errors import WeightsError
from livestyle.models.transform import pad_to_multiple

FAMILY = "pytorch_examples"  # the ``family`` value of an imported model's architecture record
# Old pytorch/examples checkpoints (PyTorch < 0.4) stored InstanceNorm running statistics that
# the layer never uses at inference; their own stylize script drops them the same way.
_RUNNING_STATS_KEY = re.compile(r"in\d+\.running_(mean|var)$|\.num_batches_tracked$")


class _ReflectConv(nn.Module):
    """Reflection padding (k // 2) then a convolution; attribute names follow pytorch/examples."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 upsample: int | None = None):
        super().__init__()
        self.upsample = upsample
        self.reflection_pad = nn.ReflectionPad2d(kernel_size // 2)
        self.conv2d = nn.Conv2d(in_channels, out_channels, kernel_size, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.upsample:
            x = F.interpolate(x, scale_factor=self.upsample, mode="nearest")
        return self.conv2d(self.reflection_pad(x))


class _CommunityResidualBlock(nn.Module):
    """conv → IN → ReLU → conv → IN, plus the input (no ReLU after the add)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = _ReflectConv(channels, channels, 3)
        self.in1 = nn.InstanceNorm2d(channels, affine=True)
        self.conv2 = _ReflectConv(channels, channels, 3)
        self.in2 = nn.InstanceNorm2d(channels, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.in1(self.conv1(x)))
        return x + self.in2(self.conv2(y))


@dataclass(frozen=True)
class CommunityNetConfig:
    """Architecture of a pytorch/examples TransformerNet: the three encoder widths and the block count."""

    channels: tuple[int, int, int] = (32, 64, 128)
    blocks: int = 5
    family: str = FAMILY

    def __post_init__(self):
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))
        if len(self.channels) != 3 or min(self.channels) < 1 or self.blocks < 0:
            raise ValueError(f"bad community architecture: channels={self.channels}, blocks={self.blocks}")
        if self.family != FAMILY:
            raise ValueError(f"unknown model family {self.family!r}")

    def to_dict(self) -> dict:
        record = asdict(self)
        record["channels"] = list(self.channels)
        return record


class CommunityTransformNet(nn.Module):
    """pytorch/examples fast_neural_style ``TransformerNet``, layer for layer, any channel widths.

    Input and output: float RGB (N, 3, H, W) in [0, 1]. Inside, the network sees ×255 values as it
    was trained to, and its raw output is divided by 255 and clamped (their stylize script clamps to
    0–255). H and W are edge-padded to a multiple of 4 (at least 8) and the output cropped back, so
    the output has the input's size; for multiples of 4 this is exactly their forward pass.
    """

    stride = 4
    min_size = 8
    value_range = 255.0

    def __init__(self, config: CommunityNetConfig = CommunityNetConfig()):
        super().__init__()
        self.config = config
        c1, c2, c3 = config.channels
        self.conv1 = _ReflectConv(3, c1, 9)
        self.in1 = nn.InstanceNorm2d(c1, affine=True)
        self.conv2 = _ReflectConv(c1, c2, 3, stride=2)
        self.in2 = nn.InstanceNorm2d(c2, affine=True)
        self.conv3 = _ReflectConv(c2, c3, 3, stride=2)
        self.in3 = nn.InstanceNorm2d(c3, affine=True)
        for i in range(1, config.blocks + 1):
            self.add_module(f"res{i}", _CommunityResidualBlock(c3))
        self.deconv1 = _ReflectConv(c3, c2, 3, upsample=2)
        self.in4 = nn.InstanceNorm2d(c2, affine=True)
        self.deconv2 = _ReflectConv(c2, c1, 3, upsample=2)
        self.in5 = nn.InstanceNorm2d(c1, affine=True)
        self.deconv3 = _ReflectConv(c1, 3, 9)

    def forward_raw(self, x255: torch.Tensor) -> torch.Tensor:
        """The reference forward pass: (N, 3, H, W) in 0–255 → unclamped 0–255-scale output."""
        y = F.relu(self.in1(self.conv1(x255)))
        y = F.relu(self.in2(self.conv2(y)))
        y = F.relu(self.in3(self.conv3(y)))
        for i in range(1, self.config.blocks + 1):
            y = getattr(self, f"res{i}")(y)
        y = F.relu(self.in4(self.deconv1(y)))
        y = F.relu(self.in5(self.deconv2(y)))
        return self.deconv3(y)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        x = pad_to_multiple(x, self.stride, self.min_size)
        y = self.forward_raw(x * self.value_range) / self.value_range
        return y.clamp(0.0, 1.0)[..., :h, :w]


def community_config_from_state_dict(state: dict[str, torch.Tensor]) -> CommunityNetConfig:
    """Infer the channel widths and residual block count from a pytorch/examples state_dict."""
    try:
        c1 = state["conv1.conv2d.weight"].shape[0]
        c2 = state["conv2.conv2d.weight"].shape[0]
        c3 = state["conv3.conv2d.weight"].shape[0]
    except KeyError as exc:
        raise WeightsError(f"not a pytorch/examples fast_neural_style state_dict: no {exc.args[0]} key") from exc
    blocks = sorted({int(m.group(1)) for k in state if (m := re.match(r"res(\d+)\.", k))})
    if blocks != list(range(1, len(blocks) + 1)):
        raise WeightsError(f"residual blocks are not numbered res1…resN: {blocks}")
    return CommunityNetConfig((c1, c2, c3), len(blocks))


def community_net_from_state_dict(state: dict[str, torch.Tensor]) -> CommunityTransformNet:
    """Build and load a ``CommunityTransformNet`` from a pytorch/examples state_dict (eval mode)."""
    state = {k: v for k, v in state.items() if not _RUNNING_STATS_KEY.search(k)}
    net = CommunityTransformNet(community_config_from_state_dict(state))
    try:
        net.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise WeightsError(f"weights do not fit the pytorch/examples TransformerNet layout: {first}") from exc
    return net.eval()
