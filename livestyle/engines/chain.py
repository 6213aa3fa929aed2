"""Style + super-resolution in one engine: stylise at the input's (low) resolution, then upscale."""
from __future__ import annotations

import torch

from livestyle.engines.base import Engine


class ChainEngine:
    """Two engines run one after the other (Engine interface): stylise, then upscale.

    Input: float32 RGB (N, 3, h, w) in [0, 1]; output (N, 3, s·h, s·w) with s = the product of
    both engines' scales, on the second engine's device. At a 1280×720 output with ×4 the style
    network runs at 320×180, 1/16 of the pixels.
    """

    def __init__(self, style_engine: Engine, sr_engine: Engine):
        self.style_engine, self.sr_engine = style_engine, sr_engine
        self.scale = style_engine.scale * sr_engine.scale
        self.device = sr_engine.device

    @property
    def name(self) -> str:  # read when asked: engines that choose on their first frame rename themselves
        return f"{self.style_engine.name} → {self.sr_engine.name}"

    def prepare(self, shape: tuple[int, ...]) -> None:
        """Let both stages choose their engines for inputs of ``shape`` (N, 3, h, w) now."""
        n, c, h, w = shape
        if hasattr(self.style_engine, "prepare"):
            self.style_engine.prepare(shape)
        s = self.style_engine.scale
        if hasattr(self.sr_engine, "prepare"):
            self.sr_engine.prepare((n, c, s * h, s * w))

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        return self.sr_engine(self.style_engine(batch))
