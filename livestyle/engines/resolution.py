"""Reduced-resolution inference: run a style engine on a downscaled frame, then upsample its output
to the frame's size — bicubic, or edge-aware with a guided filter that takes the edges from the
full-resolution input (He & Sun, "Fast Guided Filter", 2015). Not exact: a speed/quality trade."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from livestyle.errors import EngineOptionError
from livestyle.engines import UPSAMPLERS
from livestyle.engines.base import Engine



def _box_sum_1d(x: torch.Tensor, radius: int, dim: int) -> torch.Tensor:
    """Sums over windows of 2r+1 along ``dim`` (-1 or -2), zeros outside: a cumulative sum and one difference."""
    k = 2 * radius + 1
    padding = (radius + 1, radius) if dim == -1 else (0, 0, radius + 1, radius)
    cumulative = F.pad(x, padding).cumsum(dim)
    n = cumulative.shape[dim]
    return cumulative.narrow(dim, k, n - k) - cumulative.narrow(dim, 0, n - k)


def box_mean(x: torch.Tensor, radius: int) -> torch.Tensor:
    """Mean over a (2r+1)² window, windows clipped at the borders. (N, C, H, W) → same.

    Separable cumulative sums (He et al.'s O(1) box filter), faster than avg_pool2d on the CPU;
    float32 sums of [0, 1] values over one row stay within ~1e-5.
    """
    sums = _box_sum_1d(_box_sum_1d(x, radius, -1), radius, -2)
    ones = torch.ones((1, 1, *x.shape[-2:]), dtype=x.dtype, device=x.device)
    counts = _box_sum_1d(_box_sum_1d(ones, radius, -1), radius, -2)
    return sums / counts


def luma(rgb: torch.Tensor) -> torch.Tensor:
    """float RGB (N, 3, H, W) → Rec. 601 luma (N, 1, H, W)."""
    weights = rgb.new_tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    return (rgb * weights).sum(dim=1, keepdim=True)


def guided_upsample(low_out: torch.Tensor, low_in: torch.Tensor, high_in: torch.Tensor, *,
                    radius: int = 2, eps: float = 1e-3) -> torch.Tensor:
    """Fast guided filter upsampling: fit ``low_out ≈ a·luma(low_in) + b`` locally at low resolution,
    upsample a, b bilinearly and apply them to luma(high_in).

    low_out: (N, C, h, w); low_in: (N, 3, h, w); high_in: (N, 3, H, W) → (N, C, H, W), clamped to [0, 1].
    """
    guide = luma(low_in)
    c = low_out.shape[1]
    # One pooling call for all four local means (few, larger ops: cheaper on a busy small CPU).
    means = box_mean(torch.cat([guide, low_out, guide * low_out, guide * guide], dim=1), radius)
    mean_g, mean_p, mean_gp, mean_gg = torch.split(means, [1, c, c, 1], dim=1)
    a = (mean_gp - mean_g * mean_p) / (mean_gg - mean_g * mean_g + eps)
    b = mean_p - a * mean_g
    coeffs = box_mean(torch.cat([a, b], dim=1), radius)
    coeffs = F.interpolate(coeffs, size=high_in.shape[-2:], mode="bilinear", align_corners=False)
    a_up, b_up = coeffs.chunk(2, dim=1)
    return torch.addcmul(b_up, a_up, luma(high_in)).clamp_(0.0, 1.0)


class ReducedResolutionEngine:
    """Wraps a style engine: infer at ``infer_scale`` × the input size, upsample back to the input size.

    ``upsample``: "bicubic" or "guided" (edge-aware, edges from the full-resolution input).
    Input/output: float32 (N, 3, H, W) in [0, 1]; output on the wrapped engine's device.
    """

    def __init__(self, inner: Engine, *, infer_scale: float = 0.5, upsample: str = "guided"):
        if not 0.0 < infer_scale <= 1.0:
            raise EngineOptionError(f"infer scale must be in (0, 1], got {infer_scale}")
        if upsample not in UPSAMPLERS:
            raise EngineOptionError(f"unknown upsampler {upsample!r}; known: {', '.join(UPSAMPLERS)}")
        if getattr(inner, "scale", 1) != 1:
            raise EngineOptionError("reduced-resolution inference is for style models, not super-resolution")
        self.inner = inner
        # Beside ONNX Runtime's own CPU thread pool, torch's pool fights it for the cores: the guided
        # upsample was 8× slower with 2 torch threads than with 1 on a 2-core CPU (bench/README.md).
        self.torch_threads = 1 if (inner.device.type == "cpu" and inner.name.startswith("onnxruntime")) else None
        self.infer_scale = infer_scale
        self.upsample = upsample
        self.scale = 1
        self.device = inner.device
        self.name = f"{inner.name}@{infer_scale:g}x-{upsample}"

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        if self.torch_threads is None:
            return self._run(batch)
        threads = torch.get_num_threads()
        torch.set_num_threads(self.torch_threads)  # process-wide while this call runs (costs ~1 µs)
        try:
            return self._run(batch)
        finally:
            torch.set_num_threads(threads)

    @torch.inference_mode()
    def _run(self, batch: torch.Tensor) -> torch.Tensor:
        h, w = batch.shape[-2:]
        size = (max(1, round(h * self.infer_scale)), max(1, round(w * self.infer_scale)))
        high = batch.to(self.device, torch.float32)
        low = F.interpolate(high, size=size, mode="bilinear", antialias=True, align_corners=False)
        low_out = self.inner(low).to(self.device, torch.float32)
        if self.upsample == "guided":
            return guided_upsample(low_out, low, high)
        return F.interpolate(low_out, size=(h, w), mode="bicubic", align_corners=False).clamp_(0.0, 1.0)
