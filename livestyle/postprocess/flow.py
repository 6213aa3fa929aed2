"""Dense optical flow between frames: DIS flow (Kroeger et al. 2016), warping along it, and the
forward-backward occlusion check (Sundaram, Brox & Keutzer, ECCV 2010). Frames are uint8 HWC."""
from __future__ import annotations

import cv2
import numpy as np

from livestyle.errors import InputError

FB_ALPHA = 0.01  # forward-backward check: |f + b|² < α(|f|² + |b|²) + β  (Sundaram et al. 2010)
FB_BETA = 0.5
DIS_MIN_SIDE = 12  # OpenCV's DIS optical flow refuses smaller images


def to_gray(rgb: np.ndarray) -> np.ndarray:
    """uint8 RGB (H, W, 3) → uint8 grey (H, W)."""
    return cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)


def dis_flow(source: np.ndarray, target: np.ndarray, preset: int | None = None) -> np.ndarray:
    """Dense flow (H, W, 2) float32 from uint8 grey ``source`` to ``target``: source(x) ≈ target(x + flow(x))."""
    if min(source.shape[:2]) < DIS_MIN_SIDE:
        h, w = source.shape[:2]
        raise InputError(f"optical flow needs frames of at least {DIS_MIN_SIDE} px a side; these are {w}×{h} "
                         "(a larger --size or --scale)")
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM if preset is None else preset)
    return dis.calc(source, target, None)


def sample_grid(flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """x + flow(x) as the two float32 maps cv2.remap takes."""
    h, w = flow.shape[:2]
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return xs + flow[..., 0], ys + flow[..., 1]


def warp_by_flow(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Sample ``image`` (H, W[, C]) at x + flow(x) (bilinear, edges replicated); float32 out."""
    map_x, map_y = sample_grid(flow)
    return cv2.remap(image.astype(np.float32), map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def consistent_flow_mask(backward: np.ndarray, forward: np.ndarray) -> np.ndarray:
    """Non-occluded pixels (H, W) bool of frame t, given flow t→t−1 (``backward``) and t−1→t (``forward``).

    A pixel passes when following ``backward`` and then ``forward`` returns it to where it started
    (forward-backward check) and ``backward`` does not point outside frame t−1.
    """
    h, w = backward.shape[:2]
    map_x, map_y = sample_grid(backward)
    forward_there = cv2.remap(forward, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    loop = backward + forward_there
    bound = FB_ALPHA * ((backward ** 2).sum(-1) + (forward_there ** 2).sum(-1)) + FB_BETA
    inside = (map_x >= 0) & (map_x <= w - 1) & (map_y >= 0) & (map_y <= h - 1)
    return ((loop ** 2).sum(-1) < bound) & inside


def resize_flow(flow: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a flow field (H, W, 2) to ``size`` = (width, height), scaling its vectors with it."""
    h, w = flow.shape[:2]
    # Scale the vectors on the small field (cheap), then interpolate.
    scaled = flow * np.array([size[0] / w, size[1] / h], dtype=np.float32)
    return cv2.resize(scaled, size, interpolation=cv2.INTER_LINEAR)
