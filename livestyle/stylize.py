"""Apply an engine to whole images (float HWC at the edges, the engine's batch layout inside)."""
from __future__ import annotations

import numpy as np
import torch

from .engines import Engine
from .io.images import Image, resize_alpha


def run_engine_on_rgb(engine: Engine, rgb: np.ndarray) -> np.ndarray:
    """float32 RGB (H, W, 3) in [0, 1] → float32 RGB (s·H, s·W, 3) through ``engine``."""
    batch = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).unsqueeze(0)
    out = engine(batch)
    return out[0].permute(1, 2, 0).clamp(0.0, 1.0).cpu().numpy()


def stylize_image(engine: Engine, image: Image) -> Image:
    """Run ``engine`` on a decoded image; alpha is carried over (resized for SR), bit depth kept."""
    rgb = run_engine_on_rgb(engine, image.rgb)
    alpha = image.alpha
    if alpha is not None and alpha.shape != rgb.shape[:2]:
        alpha = resize_alpha(alpha, (rgb.shape[1], rgb.shape[0]))
    return Image(rgb, alpha, image.bit_depth)
