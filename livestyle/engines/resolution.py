"""Reduced-resolution inference: run a style engine on a downscaled frame, then upsample its output
to the frame's size — bicubic, or edge-aware with a guided filter that takes the edges from the
full-resolution input (He & Sun, "Fast Guided Filter", 2015). Not exact: a speed/quality trade."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from livestyle.errors import EngineOptionError
from livestyle.engines import UPSAMPLERS
from livestyle.engines.base import Engine
from livestyle.engines.device import torch_threads



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


def check_infer_scale(infer_scale: float) -> float:
    if not 0.0 < infer_scale <= 1.0:
        raise EngineOptionError(f"infer scale must be in (0, 1], got {infer_scale}")
    return float(infer_scale)


class ReducedResolutionEngine:
    """Wraps a style engine: infer at ``infer_scale`` × the input size, upsample back to the input size.

    ``upsample``: "bicubic" or "guided" (edge-aware, edges from the full-resolution input).
    ``infer_scale`` may be changed between calls (a frame-rate governor does); at 1 the frames go
    straight to the wrapped engine. Input/output: float32 (N, 3, H, W) in [0, 1]; output on the
    wrapped engine's device.
    """

    def __init__(self, inner: Engine, *, infer_scale: float = 0.5, upsample: str = "guided"):
        check_infer_scale(infer_scale)
        if upsample not in UPSAMPLERS:
            raise EngineOptionError(f"unknown upsampler {upsample!r}; known: {', '.join(UPSAMPLERS)}")
        if getattr(inner, "scale", 1) != 1:
            raise EngineOptionError("reduced-resolution inference is for style models, not super-resolution")
        self.inner = inner
        # On the CPU the resizing runs on one torch thread (the wrapped engine sets its own): beside
        # ONNX Runtime's thread pool, torch's fought it for the cores, and the guided upsample was 8×
        # slower with 2 torch threads than with 1 on a 2-core CPU (bench/README.md).
        self.torch_threads = 1 if inner.device.type == "cpu" else None
        self.infer_scale = infer_scale
        self.upsample = upsample
        self.scale = 1
        self.device = inner.device

    @property
    def name(self) -> str:
        if self.infer_scale == 1.0:
            return self.inner.name
        return f"{self.inner.name}@{self.infer_scale:g}x-{self.upsample}"

    def set_infer_scale(self, infer_scale: float) -> None:
        """Infer at ``infer_scale`` × the input size from the next call on."""
        self.infer_scale = check_infer_scale(infer_scale)

    def low_size(self, h: int, w: int) -> tuple[int, int]:
        """The size the wrapped engine runs at for an h×w input."""
        return max(1, round(h * self.infer_scale)), max(1, round(w * self.infer_scale))

    def prepare(self, shape: tuple[int, ...]) -> None:
        """Let the wrapped engine choose for the reduced size of ``shape`` now."""
        if hasattr(self.inner, "prepare"):
            n, c, h, w = shape
            self.inner.prepare((n, c, *self.low_size(h, w)))

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        if self.infer_scale == 1.0:
            return self.inner(batch)
        with torch_threads(self.torch_threads):
            return self._run(batch)

    @torch.inference_mode()
    def _run(self, batch: torch.Tensor) -> torch.Tensor:
        h, w = batch.shape[-2:]
        size = self.low_size(h, w)
        high = batch.to(self.device, torch.float32)
        low = F.interpolate(high, size=size, mode="bilinear", antialias=True, align_corners=False)
        low_out = self.inner(low).to(self.device, torch.float32)
        if self.upsample == "guided":
            # The filter's coefficients need no more than half the frame's resolution (the fast guided
            # filter's subsampling); above it their box filters cost more than the smaller network saves.
            if 2 * size[0] > h or 2 * size[1] > w:
                half = (max(1, h // 2), max(1, w // 2))
                low, low_out = (F.interpolate(t, size=half, mode="bilinear", antialias=True, align_corners=False)
                                for t in (low, low_out))
            return guided_upsample(low_out, low, high)
        return F.interpolate(low_out, size=(h, w), mode="bicubic", align_corners=False).clamp_(0.0, 1.0)
