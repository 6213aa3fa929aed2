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

from .errors import InputError

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


# --- temporal stability (flicker) ---------------------------------------------------------------
# Warping error of Lai et al. (ECCV 2018, "Learning Blind Video Temporal Consistency"): how much a
# stylised frame differs from the previous stylised frame carried along the motion of the *input*,
# over the pixels the motion explains (not occluded). Flow: OpenCV's DIS (Kroeger et al. 2016);
# occlusion: the forward-backward check of Sundaram, Brox & Keutzer (ECCV 2010).

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


def warping_error(previous_output: np.ndarray, output: np.ndarray, previous_input: np.ndarray,
                  current_input: np.ndarray) -> tuple[float, float]:
    """Warping error between two consecutive outputs (uint8 RGB), motion from the inputs (uint8 RGB).

    Returns (mean squared difference in [0, 1] units over non-occluded pixels and channels,
    fraction of pixels that were non-occluded). Outputs may be larger than inputs (SR): the flow
    is resized to the output's size.
    """
    gray_prev, gray_cur = to_gray(previous_input), to_gray(current_input)
    backward = dis_flow(gray_cur, gray_prev)
    forward = dis_flow(gray_prev, gray_cur)
    mask = consistent_flow_mask(backward, forward)
    oh, ow = output.shape[:2]
    if (oh, ow) != backward.shape[:2]:
        backward = resize_flow(backward, (ow, oh))
        mask = cv2.resize(mask.astype(np.uint8), (ow, oh), interpolation=cv2.INTER_NEAREST).astype(bool)
    warped = warp_by_flow(previous_output, backward) / 255.0
    diff = ((output.astype(np.float32) / 255.0 - warped) ** 2).mean(-1)
    valid = int(mask.sum())
    return (float(diff[mask].mean()) if valid else 0.0), valid / mask.size


def resize_flow(flow: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a flow field (H, W, 2) to ``size`` = (width, height), scaling its vectors with it."""
    h, w = flow.shape[:2]
    # Scale the vectors on the small field (cheap), then interpolate.
    scaled = flow * np.array([size[0] / w, size[1] / h], dtype=np.float32)
    return cv2.resize(scaled, size, interpolation=cv2.INTER_LINEAR)


class FlickerMeter:
    """Flicker score of a stylised video, fed frame by frame: ``meter.update(input_rgb, output_rgb)``.

    ``score``: the mean warping error over consecutive frame pairs (Lai et al. 2018; lower = steadier),
    in squared [0, 1] units; ``per_pair`` keeps each pair's value, ``coverage`` the mean fraction of
    non-occluded pixels. Both frames uint8 RGB (H, W, 3); the output may be larger (SR).
    """

    def __init__(self):
        self.per_pair: list[float] = []
        self.coverages: list[float] = []
        self._previous: tuple[np.ndarray, np.ndarray] | None = None

    def update(self, input_rgb: np.ndarray, output_rgb: np.ndarray) -> None:
        if self._previous is not None:
            error, coverage = warping_error(self._previous[1], output_rgb, self._previous[0], input_rgb)
            self.per_pair.append(error)
            self.coverages.append(coverage)
        self._previous = (input_rgb, output_rgb)

    @property
    def score(self) -> float:
        return float(np.mean(self.per_pair)) if self.per_pair else 0.0

    @property
    def coverage(self) -> float:
        return float(np.mean(self.coverages)) if self.coverages else 0.0


def flicker_score(inputs, outputs) -> float:
    """Mean warping error of an output sequence (uint8 RGB frames) along the motion of its input sequence."""
    meter = FlickerMeter()
    for input_rgb, output_rgb in zip(inputs, outputs, strict=True):
        meter.update(input_rgb, output_rgb)
    return meter.score
