"""`livestyle eval`: super-resolution quality (PSNR/SSIM) and style loss vs the Gatys baseline.

Super-resolution protocol (the benchmarks the paper reports on): the HR image cropped to a multiple
of the scale, LR = bicubic downsampling (antialiased, Keys a = −0.5 as MATLAB's imresize) stored as
8-bit, each method's output stored as 8-bit, PSNR/SSIM on the BT.601 Y channel with a border of
``scale`` pixels removed (``livestyle.metrics``). Style: the content, style, TV and total terms of
the perceptual objective for the feed-forward output and for Gatys et al. after N iterations.
"""
from __future__ import annotations

import os
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .errors import InputError
from .metrics import crop_to_multiple, psnr_y, ssim_y

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm"}

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
    """Image files directly in ``folder``, sorted; an empty or missing folder is an error."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"dataset folder not found: {folder}")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise InputError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {folder}")
    return files


def _to_batch(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(rgb, dtype=np.float32)).permute(2, 0, 1).unsqueeze(0)


def _to_rgb(batch: torch.Tensor) -> np.ndarray:
    return batch[0].permute(1, 2, 0).cpu().numpy()


def quantize(rgb: np.ndarray) -> np.ndarray:
    """float RGB [0, 1] → uint8, rounding (what saving an 8-bit image does)."""
    return (np.clip(rgb, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def bicubic_resize(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """float RGB (H, W, 3) → (h, w, 3) with antialiased bicubic (Keys a = −0.5, as MATLAB imresize)."""
    out = F.interpolate(_to_batch(rgb), size=size, mode="bicubic", align_corners=False, antialias=True)
    return _to_rgb(out.clamp(0.0, 1.0))


def make_lr(hr: np.ndarray, scale: int, blur_sigma: float = 0.0) -> np.ndarray:
    """HR float RGB (H, W, 3), H and W multiples of ``scale`` → LR uint8 (H/scale, W/scale, 3).

    ``blur_sigma`` > 0 blurs with a Gaussian first (the paper's training degradation; the
    benchmarks' own protocol is plain bicubic, ``blur_sigma=0``).
    """
    if blur_sigma > 0:
        import cv2

        hr = cv2.GaussianBlur(hr.astype(np.float32), (0, 0), blur_sigma, borderType=cv2.BORDER_REFLECT)
    h, w = hr.shape[:2]
    return quantize(bicubic_resize(hr, (h // scale, w // scale)))


Upscaler = Callable[[np.ndarray], np.ndarray]  # LR uint8 (h, w, 3) → float RGB (s·h, s·w, 3) in [0, 1]


def bicubic_upscaler(scale: int) -> Upscaler:
    """The bicubic baseline: LR uint8 → bicubic ×scale."""
    def upscale(lr: np.ndarray) -> np.ndarray:
        h, w = lr.shape[:2]
        return bicubic_resize(lr.astype(np.float32) / 255.0, (h * scale, w * scale))
    return upscale


def engine_upscaler(engine) -> Upscaler:
    """An SR engine (``livestyle.engines``) as an upscaler: LR uint8 → its output."""
    def upscale(lr: np.ndarray) -> np.ndarray:
        out = engine(_to_batch(lr.astype(np.float32) / 255.0))
        return _to_rgb(out.float().clamp(0.0, 1.0))
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
        from .io.images import read_image

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
    from .engines import create_engine

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


# --- style --------------------------------------------------------------------------------------

@dataclass
class StyleComparison:
    """Loss terms per content image: the feed-forward output and Gatys after each iteration count."""

    images: list[str]
    feedforward: list[dict[str, float]]
    gatys: dict[int, list[dict[str, float]]]
    settings: dict
    outputs: dict[str, torch.Tensor] = field(default_factory=dict)  # "<image>:feedforward" / ":gatys<N>" → (1,3,H,W)
    variants: dict[str, list[dict[str, float]]] = field(default_factory=dict)  # e.g. "feed-forward @0.5× bicubic"

    def means(self) -> dict[str, dict[str, float]]:
        """{"feed-forward": {term: mean}, <variant>: {…}, "Gatys N it": {…}} over the images."""
        def mean(rows):
            return {t: statistics.fmean(r[t] for r in rows) for t in rows[0]}
        return {"feed-forward": mean(self.feedforward), **{name: mean(v) for name, v in self.variants.items()},
                **{f"Gatys {n} it": mean(v) for n, v in self.gatys.items()}}

    def to_dict(self) -> dict:
        return {"images": self.images, "settings": self.settings, "feedforward": self.feedforward,
                "variants": self.variants, "gatys": {str(n): v for n, v in self.gatys.items()}, "mean": self.means()}


def compare_style(model: torch.nn.Module, objective, contents: Sequence[torch.Tensor], names: Sequence[str],
                  iterations: Sequence[int], *, gatys_config=None, keep_outputs: bool = False,
                  variants: dict[str, Callable[[torch.Tensor], torch.Tensor]] | None = None) -> StyleComparison:
    """Objective terms of ``model``'s output vs Gatys after each of ``iterations`` on the same content images.

    ``contents``: (1, 3, H, W) float [0, 1] on the objective's device; ``objective``: a
    ``PerceptualObjective`` with its style target set; one Gatys run per image to max(iterations).
    ``variants``: other ways to run the model (name → stylise function on such a batch, e.g. a
    ``ReducedResolutionEngine``), scored with the same objective beside the plain feed-forward row.
    """
    from .gatys import GatysConfig, optimize_image

    gatys_config = gatys_config or GatysConfig()
    counts = sorted(set(int(n) for n in iterations))
    device = next(objective.lossnet.parameters()).device
    model = model.to(device).eval()
    variants = variants or {}
    feedforward, gatys, scored = [], {n: [] for n in counts}, {v: [] for v in variants}
    outputs = {}
    for name, content in zip(names, contents):
        if min(content.shape[-2:]) < objective.lossnet.min_side:
            h, w = content.shape[-2:]
            raise InputError(f"{name} is {w}×{h} px as scored; the loss network's taps need sides of at least "
                             f"{objective.lossnet.min_side} px")
        with torch.no_grad():
            out = model(content).float().clamp(0.0, 1.0)
            feedforward.append(objective(out, content).as_floats())
            if keep_outputs:
                outputs[f"{name}:feedforward"] = out.cpu()
            for variant, stylize in variants.items():
                out = stylize(content).to(device, torch.float32).clamp(0.0, 1.0)
                scored[variant].append(objective(out, content).as_floats())
                if keep_outputs:
                    outputs[f"{name}:{variant}"] = out.cpu()
        if counts:
            config = replace(gatys_config, iterations=counts[-1])
            result = optimize_image(objective, content, config, snapshots=counts)
            for n in counts:
                with torch.no_grad():
                    gatys[n].append(objective(result.snapshots[n], content).as_floats())
                if keep_outputs:
                    outputs[f"{name}:gatys{n}"] = result.snapshots[n].cpu()
    settings = {"gatys": gatys_config.to_dict() | {"iterations": counts},
                "objective": {"loss_net": objective.lossnet.name, "content_taps": list(objective.content_taps),
                              "style_taps": list(objective.style_taps), "content_weight": objective.content_weight,
                              "style_weight": objective.style_weight, "tv_weight": objective.tv_weight,
                              "style_tap_weights": objective.style_tap_weights,
                              "loss_net_weights_sha256": objective.lossnet.weights_sha256}}
    return StyleComparison(list(names), feedforward, gatys, settings, outputs, scored)


def style_table_markdown(comparison: StyleComparison) -> str:
    """Markdown: mean content / style / TV / total loss of feed-forward vs Gatys (per row), lower is better."""
    means = comparison.means()
    reference = means["feed-forward"]["total"]
    lines = ["| method | content | style | TV | total | total vs feed-forward |", "|---|---|---|---|---|---|"]
    for method, terms in means.items():
        lines.append(f"| {method} | {terms['content']:.4g} | {terms['style']:.4g} | {terms['tv']:.4g} | "
                     f"{terms['total']:.4g} | {terms['total'] / reference - 1:+.1%} |")
    s = comparison.settings
    lines += ["", f"Mean over {len(comparison.images)} image(s): {', '.join(comparison.images)}. Same objective for "
              f"all rows: loss network {s['objective']['loss_net']}, weighted terms (total = content + style + TV). "
              f"Gatys: {s['gatys']['optimizer']}, start from {s['gatys']['init']}. The paper finds the "
              "feed-forward output matches Gatys after about 50–100 L-BFGS iterations."]
    if comparison.variants:
        lines.append("Rows with @F×: the same model run at F × the input size, then upsampled (bicubic, or guided by "
                     "the full-resolution input) — the speed option `--infer-scale F --upsample …`; losses are "
                     "measured at full resolution.")
    return "\n".join(lines) + "\n"


def objective_config_from_recipe(recipe: dict | None):
    """The ``ObjectiveConfig`` a catalog recipe states (its "objective" section), or None where it has none."""
    from .objective import ObjectiveConfig

    section = (recipe or {}).get("objective")
    if not isinstance(section, dict):
        return None
    known = ObjectiveConfig.__dataclass_fields__
    values = {k: (tuple(v) if isinstance(v, list) else v) for k, v in section.items() if k in known}
    return ObjectiveConfig(**values)


# --- video: temporal stability ------------------------------------------------------------------

@dataclass
class FlickerComparison:
    """Flicker score of one clip without and with the ``Stabilizer``, and what each costs per frame."""

    frames: int
    flicker: float  # mean warping error, squared [0, 1] units (livestyle.metrics.FlickerMeter)
    flicker_stabilized: float
    coverage: float  # mean fraction of non-occluded pixels the score is taken over
    stylize_ms: float  # per frame, median
    stabilize_ms: float  # per frame, median
    cuts: int

    @property
    def reduction(self) -> float:
        """Fraction by which stabilising lowered the flicker score (0.3 = 30% lower)."""
        return 1.0 - self.flicker_stabilized / self.flicker if self.flicker > 0 else 0.0

    @property
    def extra_time(self) -> float:
        """Stabiliser time as a fraction of the stylising time per frame."""
        return self.stabilize_ms / self.stylize_ms if self.stylize_ms > 0 else 0.0

    def to_dict(self) -> dict:
        return {**self.__dict__, "reduction": self.reduction, "extra_time": self.extra_time}


def compare_flicker(frames, stylize: Callable[[np.ndarray], np.ndarray], *, stabilizer=None,
                    max_frames: int | None = None) -> FlickerComparison:
    """Stylise ``frames`` (iterable of uint8 RGB (H, W, 3)) once, score flicker without and with stabilising.

    ``stylize``: uint8 RGB frame → uint8 RGB stylised frame (any size); ``stabilizer``: a
    ``livestyle.temporal.Stabilizer`` (default settings if None). Both outputs come from the same
    stylised frames, so the difference is the stabiliser's alone.
    """
    import time

    from .metrics import FlickerMeter
    from .temporal import Stabilizer

    stabilizer = stabilizer or Stabilizer()
    raw, steady = FlickerMeter(), FlickerMeter()
    stylize_s, stabilize_s = [], []
    for count, frame in enumerate(frames):
        if max_frames is not None and count >= max_frames:
            break
        t0 = time.perf_counter()
        out = stylize(frame)
        t1 = time.perf_counter()
        steadied = stabilizer(frame, out)
        t2 = time.perf_counter()
        stylize_s.append(t1 - t0)
        stabilize_s.append(t2 - t1)
        raw.update(frame, out)
        steady.update(frame, steadied)
    if len(stylize_s) < 2:
        raise InputError("a flicker score needs at least two frames")
    return FlickerComparison(len(stylize_s), raw.score, steady.score, raw.coverage,
                             1000 * statistics.median(stylize_s), 1000 * statistics.median(stabilize_s),
                             stabilizer.cuts)
