"""Small inputs shared by several test modules."""
import cv2
import numpy as np
import torch

from livestyle.models.transform import transform_net


def tiny_style():
    """A seeded width-4, one-block TransformNet in eval mode, with a border margin as shipped models have."""
    torch.manual_seed(0)
    return transform_net(width=4, blocks=1, margin=6).eval()


def natural_image(h: int, w: int) -> torch.Tensor:
    """Smooth gradients with mild noise: 'natural-looking' for PSNR checks. (1, 3, H, W) in [0, 1]."""
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    base = torch.stack([xx, yy, 0.5 + 0.4 * torch.sin(6 * xx + 3 * yy)])
    noise = torch.rand(3, h, w, generator=torch.Generator().manual_seed(1)) * 0.1
    return (0.9 * base + noise).clamp(0, 1).unsqueeze(0)


def smooth_image(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A photo-like uint8 RGB (h, w, 3) image: a random low-resolution pattern enlarged bicubically."""
    small = rng.integers(0, 256, (max(2, h // 8), max(2, w // 8), 3), dtype=np.uint8)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def pretend_native_bf16(monkeypatch, native: bool) -> None:
    """Make ``cpu_has_native_bf16()`` answer ``native`` wherever it is called (its CPU probes are patched)."""
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: native, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: native, raising=False)
