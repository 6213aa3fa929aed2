"""PyTorch backend: eager execution on CPU or CUDA, FP32 or FP16."""
from __future__ import annotations

import torch
from torch import nn

from ..errors import BackendUnavailableError


def resolve_device(device: str | None) -> torch.device:
    """``None``/"auto" → CUDA if present, else CPU. An explicit CUDA device that is absent is an error."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise BackendUnavailableError(f"unknown device {device!r}; use cpu, cuda or cuda:N") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise BackendUnavailableError(f"device {device!r} asked for, but CUDA is not available on this machine")
    return dev


class TorchEngine:
    """Runs a network with PyTorch eagerly; ``fp16`` needs CUDA (instance norm stays numerically safe there)."""

    def __init__(self, model: nn.Module, *, device: torch.device | str | None = None, fp16: bool = False):
        self.device = resolve_device(device) if not isinstance(device, torch.device) else device
        if fp16 and self.device.type != "cuda":
            raise BackendUnavailableError("--fp16 needs a CUDA device; this run is on the CPU")
        self.dtype = torch.float16 if fp16 else torch.float32
        self.model = model.eval().to(self.device, self.dtype)
        self.scale = getattr(model, "scale", 1)
        self.name = f"torch-{self.device.type}-{'fp16' if fp16 else 'fp32'}"

    @torch.inference_mode()
    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        out = self.model(batch.to(self.device, self.dtype, non_blocking=True))
        return out.float()
