"""The engine interface: one network on one backend.

Layout at every engine boundary: float32 RGB, (N, 3, H, W), values in [0, 1], on the CPU or on the
engine's device (``livestyle.models.convention``).
"""
from __future__ import annotations

from typing import Protocol

import torch


class Engine(Protocol):
    """Runs one network: ``engine(batch)`` → output batch (same layout; ×scale in H, W for SR)."""

    name: str  # backend and precision, e.g. "torch-cpu-fp32"
    scale: int
    device: torch.device

    def __call__(self, batch: torch.Tensor) -> torch.Tensor: ...
