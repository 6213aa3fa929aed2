"""The one tensor convention of livestyle, and every conversion at its edges.

Between modules, images are float32 RGB ``(N, 3, H, W)`` with values in [0, 1]. Arrays at the I/O
edges are HWC: float32 in [0, 1] (decoded images) or uint8 (video frames).
"""
from __future__ import annotations

import numpy as np
import torch


def image_to_batch(rgb: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """RGB (H, W, 3), float in [0, 1] or uint8 → float32 (1, 3, H, W) in [0, 1] on ``device``."""
    t = torch.from_numpy(np.ascontiguousarray(rgb))
    t = t.float().div(255.0) if t.dtype == torch.uint8 else t.float()
    return t.permute(2, 0, 1).unsqueeze(0).contiguous().to(device)


def batch_to_image(batch: torch.Tensor) -> np.ndarray:
    """(N, 3, H, W) → float32 RGB (H, W, 3) of the first image, clamped to [0, 1], on the CPU."""
    return batch[0].detach().float().clamp(0.0, 1.0).permute(1, 2, 0).cpu().numpy()


def uint8_to_batch(frames: torch.Tensor) -> torch.Tensor:
    """uint8 RGB (N, H, W, 3) → float32 (N, 3, H, W) in [0, 1], on the same device."""
    return frames.permute(0, 3, 1, 2).float().div_(255.0)


def batch_to_uint8(batch: torch.Tensor) -> torch.Tensor:
    """float (N, 3, H, W) in [0, 1] → uint8 RGB (N, H, W, 3), rounded, contiguous, on the same device."""
    u8 = batch.detach().float().clamp(0.0, 1.0).mul(255.0).add_(0.5).to(torch.uint8)
    return u8.permute(0, 2, 3, 1).contiguous()


def frames_to_batch(frames: list[np.ndarray], device: torch.device | str = "cpu") -> torch.Tensor:
    """uint8 RGB frames (H, W, 3), all the same size → float32 (N, 3, H, W) in [0, 1] on ``device``."""
    return uint8_to_batch(torch.from_numpy(np.stack(frames)).to(device, non_blocking=True))


def batch_to_frames(batch: torch.Tensor) -> list[np.ndarray]:
    """float (N, 3, H, W) in [0, 1] → list of uint8 RGB frames (H, W, 3) on the CPU."""
    return list(batch_to_uint8(batch).cpu().numpy())
