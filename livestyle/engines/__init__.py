"""Inference engines behind one interface (see base.py for the tensor layout)."""
from __future__ import annotations

from torch import nn

from .base import Engine, batch_to_frames, frames_to_batch
from .torch_engine import TorchEngine, resolve_device

BACKENDS = ("auto", "torch")


def create_engine(model: nn.Module, *, backend: str = "auto", device: str | None = None,
                  fp16: bool = False) -> Engine:
    """Build the engine for ``model``; ``auto`` picks the fastest backend present."""
    return TorchEngine(model, device=device, fp16=fp16)


__all__ = ["BACKENDS", "Engine", "TorchEngine", "batch_to_frames", "create_engine", "frames_to_batch", "resolve_device"]
