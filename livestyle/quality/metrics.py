"""Image-quality metrics with the usual super-resolution protocol: PSNR and SSIM on the Y channel.

Protocol (as in the SR literature the paper compares with): both images RGB, the luma Y of
ITU-R BT.601 on the 16–235 scale (MATLAB's ``rgb2ycbcr``), a border of ``crop`` pixels (= the
scale factor) removed on every side, data range 255. SSIM per Wang, Bovik, Sheikh & Simoncelli
(IEEE TIP 2004): 11×11 Gaussian window σ = 1.5, K1 = 0.01, K2 = 0.03, mean of the SSIM map over
the positions where the window fits inside the image.
"""
from __future__ import annotations

import math

import cv2
import numpy as np


# BT.601 luma for RGB in [0, 1] → Y in [16, 235] (the coefficients MATLAB's rgb2ycbcr uses).
_Y_WEIGHTS = np.array([65.481, 128.553, 24.966])
_Y_OFFSET = 16.0
DATA_RANGE = 255.0

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03


def _as_unit_float(image: np.ndarray) -> np.ndarray:
    """uint8 / uint16 / float [0, 1] image → float64 in [0, 1]."""
    if image.dtype == np.uint8:
        return image.astype(np.float64) / 255.0
    if image.dtype == np.uint16:
        return image.astype(np.float64) / 65535.0
    return image.astype(np.float64)


def rgb_to_y(image: np.ndarray) -> np.ndarray:
    """RGB (H, W, 3) uint8 or float [0, 1] → float64 luma Y (H, W) on BT.601's 16–235 scale.

    A single-channel (H, W) image is taken as already being luma on the 0–255 scale.
    """
    if image.ndim == 2:
        return image.astype(np.float64)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an RGB (H, W, 3) image, got shape {image.shape}")
    return _as_unit_float(image) @ _Y_WEIGHTS + _Y_OFFSET


def _prepare(a: np.ndarray, b: np.ndarray, crop: int) -> tuple[np.ndarray, np.ndarray]:
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")
    ya, yb = rgb_to_y(a), rgb_to_y(b)
    if crop:
        if min(ya.shape) <= 2 * crop:
            raise ValueError(f"image {ya.shape} is too small for a border crop of {crop}")
        ya, yb = ya[crop:-crop, crop:-crop], yb[crop:-crop, crop:-crop]
    return ya, yb


def psnr_y(image: np.ndarray, reference: np.ndarray, crop: int = 0) -> float:
    """PSNR (dB) between two RGB images (H, W, 3) on Y, ``crop`` border pixels removed; identical → inf."""
    ya, yb = _prepare(image, reference, crop)
    return psnr(ya, yb)


def psnr(a: np.ndarray, b: np.ndarray, data_range: float = DATA_RANGE) -> float:
    """PSNR (dB) of two same-shape arrays: 10·log10(range² / MSE); identical → inf."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    if mse == 0.0:
        return math.inf
    return 10.0 * math.log10(data_range ** 2 / mse)


def gaussian_window(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> np.ndarray:
    """Normalised 2-D Gaussian (size, size), float64 — MATLAB's fspecial('gaussian', size, sigma)."""
    x = np.arange(size) - (size - 1) / 2.0
    g = np.exp(-(x ** 2) / (2.0 * sigma ** 2))
    g /= g.sum()
    return np.outer(g, g)


def _filter_valid(image: np.ndarray, window: np.ndarray) -> np.ndarray:
    """Correlate with ``window`` and keep only positions where it lies fully inside (MATLAB 'valid')."""
    pad = window.shape[0] // 2
    full = cv2.filter2D(image, cv2.CV_64F, window, borderType=cv2.BORDER_REFLECT)
    return full[pad:-pad, pad:-pad] if pad else full


def ssim(a: np.ndarray, b: np.ndarray, data_range: float = DATA_RANGE) -> float:
    """Mean SSIM (Wang et al. 2004) of two same-shape 2-D arrays; identical → 1.0."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"ssim needs two same-shape 2-D arrays, got {a.shape} and {b.shape}")
    if min(a.shape) < SSIM_WINDOW:
        raise ValueError(f"image {a.shape} is smaller than the {SSIM_WINDOW}×{SSIM_WINDOW} SSIM window")
    window = gaussian_window()
    c1 = (SSIM_K1 * data_range) ** 2
    c2 = (SSIM_K2 * data_range) ** 2
    mu_a, mu_b = _filter_valid(a, window), _filter_valid(b, window)
    var_a = _filter_valid(a * a, window) - mu_a ** 2
    var_b = _filter_valid(b * b, window) - mu_b ** 2
    cov = _filter_valid(a * b, window) - mu_a * mu_b
    ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
    return float(ssim_map.mean())


def ssim_y(image: np.ndarray, reference: np.ndarray, crop: int = 0) -> float:
    """SSIM between two RGB images (H, W, 3) on Y, ``crop`` border pixels removed."""
    ya, yb = _prepare(image, reference, crop)
    return ssim(ya, yb)


def crop_to_multiple(image: np.ndarray, factor: int) -> np.ndarray:
    """Crop (H, W, …) at the bottom/right so H and W are multiples of ``factor`` (SR ground truth)."""
    h, w = image.shape[:2]
    return image[: h - h % factor, : w - w % factor]
