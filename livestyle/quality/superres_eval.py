"""Super-resolution quality with the benchmarks' protocol, beside the paper's figures (Table 2).

The HR image is cropped to a multiple of the scale; LR = antialiased bicubic downsampling (Keys
a = −0.5, as MATLAB's imresize), stored as 8-bit; each method's output is stored as 8-bit; PSNR and
SSIM on the BT.601 Y channel with a border of ``scale`` pixels removed (``livestyle.quality.metrics``).
Training makes its inputs with the same ``make_low_resolution``, so models meet what they learn on.
"""
from __future__ import annotations

import math
import os
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from livestyle.errors import InputError
from livestyle.io.images import list_images, read_image
from livestyle.models.convention import batch_to_image, image_to_batch
from livestyle.quality.metrics import crop_to_multiple, psnr_y, ssim_y

# Johnson et al. 2016, Table 2 (PSNR dB / SSIM), keyed by the benchmark's name.
PAPER_SR: dict[int, dict[str, dict[str, tuple[float, float]]]] = {
    4: {
        "Set5": {"bicubic": (28.43, 0.8114), "l_pixel": (28.40, 0.8205), "SRCNN": (30.48, 0.8628),
                 "l_feat": (27.09, 0.7680)},
        "Set14": {"bicubic": (25.99, 0.7301), "l_pixel": (25.75, 0.6994), "SRCNN": (27.49, 0.7503),
                  "l_feat": (24.99, 0.6731)},
        "BSD100": {"bicubic": (25.96, 0.682), "l_pixel": (25.91, 0.6680), "SRCNN": (26.90, 0.7101),
                   "l_feat": (24.95, 0.6317)},
    },
    8: {
        "Set5": {"bicubic": (23.80, 0.6455), "l_pixel": (24.77, 0.6864), "l_feat": (23.26, 0.7058)},
        "Set14": {"bicubic": (22.37, 0.5518), "l_pixel": (23.02, 0.5787), "l_feat": (21.64, 0.5837)},
        "BSD100": {"bicubic": (22.11, 0.5322), "l_pixel": (22.54, 0.5526), "l_feat": (21.35, 0.5474)},
    },
}


def paper_benchmark_name(folder: str | os.PathLike) -> str | None:
    """The paper's benchmark a folder holds, from its whole name (a leading C for the colour versions):
    Set5/CSet5 → Set5, Set14/CSet14 → Set14, BSD68/CBSD68/BSD100 → BSD100; any other name → None
    (a training folder such as bsds500_train must not be shown beside the paper's test figures)."""
    name = Path(folder).name.lower().removeprefix("c")
    return {"set5": "Set5", "set14": "Set14", "bsd68": "BSD100", "bsd100": "BSD100"}.get(name)


def dataset_images(folder: str | os.PathLike) -> list[Path]:
    """The images directly in an evaluation folder, sorted; an empty or missing folder is an error."""
    return list_images(folder, what="dataset folder")


def quantize(rgb: np.ndarray) -> np.ndarray:
    """float RGB [0, 1] → uint8, rounding (what saving an 8-bit image does)."""
    return (np.clip(rgb, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def bicubic_resize(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """float RGB (H, W, 3) → (h, w, 3) with antialiased bicubic (Keys a = −0.5, as MATLAB imresize)."""
    out = F.interpolate(image_to_batch(rgb), size=size, mode="bicubic", align_corners=False, antialias=True)
    return batch_to_image(out)


def gaussian_kernel1d(sigma: float, dtype: torch.dtype = torch.float32, device=None) -> torch.Tensor:
    """Normalised 1-D Gaussian taps covering ±3σ: (2·ceil(3σ) + 1,)."""
    radius = max(1, math.ceil(3 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-0.5 * (x / sigma) ** 2)
    return (kernel / kernel.sum()).to(dtype=dtype, device=device)


def gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur with reflected borders (replicated where the image is no wider than the
    kernel's radius, which reflection cannot pad): float (N, C, H, W) → same shape."""
    kernel = gaussian_kernel1d(sigma, images.dtype, images.device)
    radius, channels = kernel.numel() // 2, images.shape[1]
    mode = "reflect" if radius < min(images.shape[-2:]) else "replicate"
    x = F.pad(images, (radius, radius, radius, radius), mode=mode)
    x = F.conv2d(x, kernel.view(1, 1, 1, -1).expand(channels, 1, 1, -1), groups=channels)
    return F.conv2d(x, kernel.view(1, 1, -1, 1).expand(channels, 1, -1, 1), groups=channels)


def make_low_resolution(high: torch.Tensor, scale: int, sigma: float = 0.0) -> torch.Tensor:
    """SR input: antialiased bicubic downsampling by ``scale`` (as MATLAB's imresize, the benchmarks'
    protocol, and training's inputs), after an optional Gaussian blur σ (the paper's 1.0).

    float (N, 3, H, W) in [0, 1] with H, W multiples of ``scale`` → (N, 3, H/scale, W/scale) in [0, 1].
    """
    h, w = high.shape[-2:]
    if h % scale or w % scale:
        raise ValueError(f"patch {h}×{w} is not a multiple of the scale {scale}")
    blurred = gaussian_blur(high, sigma) if sigma > 0 else high
    low = F.interpolate(blurred, size=(h // scale, w // scale), mode="bicubic", align_corners=False, antialias=True)
    return low.clamp(0.0, 1.0)


def make_lr(hr: np.ndarray, scale: int, blur_sigma: float = 0.0) -> np.ndarray:
    """HR float RGB (H, W, 3), H and W multiples of ``scale`` → LR uint8 (H/scale, W/scale, 3), the
    benchmarks' input (``blur_sigma`` > 0 blurs first, the paper's training degradation)."""
    return quantize(batch_to_image(make_low_resolution(image_to_batch(hr), scale, blur_sigma)))


Upscaler = Callable[[np.ndarray], np.ndarray]  # LR uint8 (h, w, 3) → float RGB (s·h, s·w, 3) in [0, 1]


def bicubic_upscaler(scale: int) -> Upscaler:
    """The bicubic baseline: LR uint8 → bicubic ×scale."""
    def upscale(lr: np.ndarray) -> np.ndarray:
        h, w = lr.shape[:2]
        return bicubic_resize(lr, (h * scale, w * scale))
    return upscale


def engine_upscaler(engine) -> Upscaler:
    """An SR engine (``livestyle.engines``) as an upscaler: LR uint8 → its output."""
    def upscale(lr: np.ndarray) -> np.ndarray:
        return batch_to_image(engine(image_to_batch(lr)))
    return upscale


@dataclass
class SRScore:
    """Mean PSNR (dB) / SSIM of one method on one data set, and per image."""

    psnr: float
    ssim: float
    per_image: dict[str, tuple[float, float]] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"psnr": self.psnr, "ssim": self.ssim,
                "per_image": {k: {"psnr": p, "ssim": s} for k, (p, s) in self.per_image.items()}}


def evaluate_sr_dataset(folder: str | os.PathLike, scale: int, upscalers: dict[str, Upscaler], *,
                        blur_sigma: float = 0.0, read=None) -> dict[str, SRScore]:
    """PSNR/SSIM (Y, border = ``scale``) of each upscaler on every HR image of ``folder``.

    Every upscaler sees the same 8-bit LR image; its output is quantised to 8 bits before scoring.
    """
    if read is None:
        def read(path):
            return read_image(path).rgb
    scores: dict[str, dict[str, tuple[float, float]]] = {name: {} for name in upscalers}
    for path in dataset_images(folder):
        hr = quantize(crop_to_multiple(read(path), scale))
        if min(hr.shape[:2]) < 2 * scale + 11:
            raise InputError(f"{path} is too small for ×{scale} evaluation ({hr.shape[1]}×{hr.shape[0]})")
        lr = make_lr(hr.astype(np.float32) / 255.0, scale, blur_sigma)
        for name, upscale in upscalers.items():
            sr = quantize(upscale(lr))
            if sr.shape != hr.shape:
                raise InputError(f"{name} gave {sr.shape[1]}×{sr.shape[0]} for {path.name}, expected "
                                 f"{hr.shape[1]}×{hr.shape[0]} (is it a ×{scale} model?)")
            scores[name][path.name] = (psnr_y(sr, hr, crop=scale), ssim_y(sr, hr, crop=scale))
    return {name: SRScore(statistics.fmean(p for p, _ in per.values()), statistics.fmean(s for _, s in per.values()),
                          per)
            for name, per in scores.items()}


def evaluate_superres(model, sets: dict[str, str | os.PathLike], *, device: torch.device | str = "cpu",
                      blur_sigma: float = 0.0) -> dict:
    """Quality of an SR model beside bicubic on named HR folders, as a catalog ``quality`` dict.

    → {"protocol": str, "sets": {name: {"images": n, "model": {"psnr", "ssim"}, "bicubic": {…}}}}
    """
    from livestyle.engines.factory import create_engine

    scale = int(model.scale)
    engine = create_engine(model, backend="torch", device=str(device))
    out = {"protocol": protocol_note(scale, blur_sigma), "sets": {}}
    for name, folder in sets.items():
        scores = evaluate_sr_dataset(folder, scale, {"bicubic": bicubic_upscaler(scale),
                                                     "model": engine_upscaler(engine)}, blur_sigma=blur_sigma)
        out["sets"][name] = {"images": len(scores["model"].per_image),
                             **{k: {"psnr": round(v.psnr, 3), "ssim": round(v.ssim, 4)} for k, v in scores.items()}}
    return out


def protocol_note(scale: int, blur_sigma: float = 0.0) -> str:
    blur = f"Gaussian blur σ={blur_sigma:g} then " if blur_sigma > 0 else ""
    return (f"×{scale}: HR cropped to a multiple of {scale}; LR = {blur}antialiased bicubic (a=−0.5) downsampling, "
            f"8-bit; outputs 8-bit; PSNR/SSIM on BT.601 Y (16–235), border {scale} px removed; "
            f"SSIM Wang et al. 2004 (11×11 Gaussian σ=1.5)")


def superres_table_markdown(results: dict[str, dict[str, SRScore]], scale: int,
                            note_no_models: bool = False) -> str:
    """Markdown table: per data set, each method's PSNR/SSIM, the paper's figures beside where it has them."""
    lines = ["| data set | method | PSNR (dB) | SSIM | paper PSNR | paper SSIM |", "|---|---|---|---|---|---|"]
    for folder, scores in results.items():
        bench = paper_benchmark_name(folder)
        paper = PAPER_SR.get(scale, {}).get(bench or "", {})
        shown_name = Path(folder).name + (f" ({bench})" if bench else "")
        for method, score in scores.items():
            ref = paper.get("bicubic") if method == "bicubic" else None  # only bicubic is the same method
            lines.append(f"| {shown_name} | ours: {method} | {score.psnr:.2f} | {score.ssim:.4f} | "
                         + (f"{ref[0]:.2f} | {ref[1]:.4f} |" if ref else "– | – |"))
        for method, (p, s) in paper.items():
            if method != "bicubic":
                lines.append(f"| {shown_name} | paper: {method} | – | – | {p:.2f} | {s:.4f} |")
    notes = ["", protocol_note(scale)]
    if any(paper_benchmark_name(f) == "BSD100" for f in results):
        notes.append("BSD100 in the paper; CBSD68 here holds 68 of its images, so figures compare loosely.")
    if note_no_models:
        notes.append(f"No ×{scale} super-resolution model is installed (empty catalog, no --model): bicubic only.")
    return "\n".join(lines + notes) + "\n"
