"""The engine interface: one network on one backend.

Layout at every engine boundary: float32 RGB, (N, 3, H, W), values in [0, 1], on the CPU or on
the engine's device. ``frames_to_batch`` / ``batch_to_frames`` convert from/to uint8 HWC frames.
"""
from __future__ import annotations

from typing import Protocol

import numpy as np
import torch


class Engine(Protocol):
    """Runs one network: ``engine(batch)`` → output batch (same layout; ×scale in H, W for SR)."""

    name: str  # backend name, e.g. "torch-cpu-fp32"
    scale: int
    device: torch.device

    def __call__(self, batch: torch.Tensor) -> torch.Tensor: ...


def frames_to_batch(frames: list[np.ndarray], device: torch.device | str = "cpu") -> torch.Tensor:
    """uint8 RGB frames (H, W, 3), all the same size → float32 (N, 3, H, W) in [0, 1] on ``device``."""
    stacked = torch.from_numpy(np.stack(frames)).to(device, non_blocking=True)
    return stacked.permute(0, 3, 1, 2).float().div_(255.0)


def batch_to_frames(batch: torch.Tensor) -> list[np.ndarray]:
    """float (N, 3, H, W) in [0, 1] → list of uint8 RGB frames (H, W, 3) on the CPU."""
    u8 = batch.detach().float().clamp(0.0, 1.0).mul(255.0).add_(0.5).to(torch.uint8)
    return list(u8.permute(0, 2, 3, 1).contiguous().cpu().numpy())
