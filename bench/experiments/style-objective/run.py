"""Issue 23: which SqueezeNet style objective makes the shipped styles look like the paintings?

A Gatys study (the image is optimised directly, so it shows what an objective asks for, whatever a
small network can learn). For each of the four shipped styles, on chicago.jpg and
hoovertowernight.jpg, L-BFGS with the project's own objective code (``ObjectiveConfig`` /
``PerceptualObjective`` / ``optimize_image``: the Gram and feature losses training uses), varying:

  stage 1 (style image at today's 256 px): style taps and per-tap weights
      today   conv1,fire2..fire5   20,1.5,1.5,1,5 (today's training default)
      deep    conv1,fire2..fire9   today's + fire6..fire9 balanced (5,100,100,3000)
      deep4   conv1,fire2..fire9   today's + the deep taps at 4x their balanced weight
      coarse  conv1,fire5..fire9   conv1 20, fire5 5, deep taps balanced (fine-texture taps dropped)
    x style weight x1, x3, x10, x30 today's 5e-4                               (16 settings)
  stage 2 (STAGE2, chosen from stage 1): style size 384, 512 for today's taps at x1, x3; and
      deepq   conv1,fire2..fire9   today's + the deep taps at 1/4 of their balanced weight
    at style size 256, 384, 512, x1                                            (7 settings)
  stage 3 (STAGE3, after training): the objective the networks train with,
      deep12  conv1,fire2..fire9   today's + the deep taps at 1/12 of their balanced weight
    at x3 and style size 384 (1 setting; at x3 the deep taps weigh what they do in deepq x1)
"balanced": each deep tap's weight makes its raw Gram loss for a photo against a painting about 1e7,
as today's weights do for conv1..fire5 (raw losses, 384x256 photos vs 256-px paintings: fire6 ~2e6,
fire7 ~1e5, fire8 ~8e4, fire9 ~2.5e3). Content weight 1 (fire4) and TV 1e4 are today's throughout.

Protocols (how a cell is optimised; the style sizes named are always the *training* ones):
  pilot  the first design, kept as evidence: L-BFGS 150 iterations from the content photo, photos at
         long side 384, style at the size named. It never leaves the photo (findings.md), so it was
         stopped after kandinsky and part of starry_night (stage 1 only): `--protocol pilot`.
  main   the study: L-BFGS 300 iterations from uniform noise (seed 0; Gatys et al.'s start), photos
         at short side 170 and the style image at 2/3 of the size named, i.e. the geometry of
         training (photos at short side 256, 256-px crops, style at the size named) scaled by 2/3.
  final  (optional, not run for findings.md: the CPU went to training instead) today's setting and
         the chosen one per style at training geometry (photos at short side 256), noise start, 300 it.

Each cell (style x photo x setting) is measured on fixed yardsticks, independent of the setting:
  deep_style_loss  unweighted sum over fire6..fire9 of the Gram style loss (livestyle.losses
                   normalisation) against the painting resized to the photo's long side
  swd_lab          sliced Wasserstein distance (W1, 64 random projections, 4096 pixels subsampled,
                   seed 0) between the output's and the painting's pixels in CIE Lab
  content_fire4    unweighted feature loss at fire4 against the content photo
plus every tap's raw Gram loss, the optimiser's final terms and the seconds it took (with the CPU).
References on the same yardsticks: the photo itself and the shipped small models' outputs.

Outputs in results/: results.json (every cell: settings, measurements, seconds, CPU), table.md,
contact sheets sheet_<style>_<stage>.jpg (a grid; settings and measurements written on each
cell, the painting, the photos and the shipped model's output on top; the chosen cell framed red),
chosen/ (today's and the chosen setting's outputs per style and photo). Cell images are cached in
cache/; finished cells are skipped on a re-run.

Run from the repository root, one thread:
    OMP_NUM_THREADS=1 python bench/experiments/style-objective/run.py      # stages 1 and 2
    ... run.py --stage 1|2|3|final [--protocol pilot] [--sheets-only]
Time, one thread of the AMD EPYC here (2 cores, the other one busy with other work): main cells
take 14-44 s per photo, depending on the other core's load (stage 1: 128 cells, 52 min here;
stage 2: 56 cells, ~25 min); the pilot (52 cells) took ~15 min more: about 1.5 h in all.

Two more subcommands (one thread, a few seconds each):
    python bench/experiments/style-objective/run.py eval-models --style starry_night [--tapset today --factor 3
        --size 384] --out DIR --label NAME MODEL.safetensors [MODEL ...]   # trained models on the yardsticks,
        # beside the Gatys cell of their objective (protocol "final": photos at short side 256)
    python bench/experiments/style-objective/run.py frame-time   # ms per 640x480 frame, width 8 and 16
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image as PILImage, ImageDraw, ImageFont  # noqa: E402

# --- library imports (the only lines that name livestyle modules) ---
from livestyle.io.images import read_image  # noqa: E402
from livestyle.models.convention import image_to_batch  # noqa: E402
from livestyle.models.lossnets import loss_network  # noqa: E402
from livestyle.models.transform import transform_net  # noqa: E402
from livestyle.quality.gatys import GatysConfig, optimize_image  # noqa: E402
from livestyle.quality.losses import feature_loss, gram_matrix, style_loss  # noqa: E402
from livestyle.quality.objective import ObjectiveConfig, PerceptualObjective, resize_long_side  # noqa: E402
from livestyle.zoo.modelfile import load_model_file  # noqa: E402
# ---

torch.set_num_threads(1)
cv2.setNumThreads(1)

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
DATA = Path(os.environ.get("LIVESTYLE_DATA", REPO.parent / "shared" / "data"))
LOSSNET = Path(os.environ.get("LIVESTYLE_LOSSNET_WEIGHTS", DATA / "lossnets" / "squeezenet1_1_imagenet.safetensors"))
RESULTS, CACHE = HERE / "results", HERE / "cache"

STYLES = {  # style name (shipped model <name>_small) → painting file
    "kandinsky": "composition_vii.jpg",
    "starry_night": "starry_night.jpg",
    "the_scream": "the_scream.jpg",
    "wave": "wave.jpg",
}
CONTENTS = ("chicago", "hoovertowernight")
DEEP = ("fire6", "fire7", "fire8", "fire9")
ALL_TAPS = ("conv1", "fire2", "fire3", "fire4", "fire5", *DEEP)

BASE_STYLE_WEIGHT = 5e-4  # the training default before this study (livestyle.train.STYLE_TRAINING_WEIGHTS then)
CONTENT_WEIGHT, TV_WEIGHT = 1.0, 1e4
TODAY = {"conv1": 20.0, "fire2": 1.5, "fire3": 1.5, "fire4": 1.0, "fire5": 5.0}
DEEP_BALANCED = {"fire6": 5.0, "fire7": 100.0, "fire8": 100.0, "fire9": 3000.0}
TAPSETS = {  # name → per-tap weights (the keys are the style taps)
    "today": TODAY,
    "deep": {**TODAY, **DEEP_BALANCED},
    "deep4": {**TODAY, **{t: 4 * w for t, w in DEEP_BALANCED.items()}},
    "coarse": {"conv1": 20.0, "fire5": 5.0, **DEEP_BALANCED},
    "deepq": {**TODAY, **{t: w / 4 for t, w in DEEP_BALANCED.items()}},  # added for stage 2
    # added for stage 3, after training (findings.md): at x3, the deep taps' absolute weight is deepq x1's
    "deep12": {**TODAY, **{t: w / 12 for t, w in DEEP_BALANCED.items()}},
}
STAGE1_TAPSETS = ("today", "deep", "deep4", "coarse")
FACTORS = (1, 3, 10, 30)  # style weight = factor × BASE_STYLE_WEIGHT
STAGE1_SIZE = 256
# Stage 2, chosen after looking at the stage-1 sheets (findings.md): tap setting → (style sizes, factors).
# From noise, x10 and x30 left no scene for any tap setting, and every deep-tap setting of stage 1
# lost the scene and washed out the colours already at x1: hence deepq, the deep taps at 1/4 of "deep".
STAGE2 = {"today": ((384, 512), (1, 3)), "deepq": ((256, 384, 512), (1,))}
# Stage 3, after training (findings.md): the networks trained on the chosen objective lowered the deep-tap
# loss much less than Gatys does, so the objective they train with adds the deep taps (deep12 x3, style 384);
# Gatys on it, beside the chosen cell.
STAGE3 = {"deep12": ((384,), (3,))}
# The setting chosen per style after looking at the sheets (findings.md): (tapset, factor, style size).
CHOSEN = {
    "kandinsky": ("today", 3, 384),
    "starry_night": ("today", 3, 384),
    "the_scream": ("today", 3, 384),
    "wave": ("today", 3, 384),
}
TODAY_SETTING = ("today", 1, 256)
PROTOCOLS = {
    # init, iterations, how the photos are sized (side, pixels), study style size / training style size, styles
    "pilot": {"init": "content", "iterations": 150, "content": ("long", 384), "style_scale": 1.0,
              "styles": ("kandinsky", "starry_night")},
    "main": {"init": "noise", "iterations": 300, "content": ("short", 170), "style_scale": 2 / 3,
             "styles": tuple(STYLES)},
    "final": {"init": "noise", "iterations": 300, "content": ("short", 256), "style_scale": 1.0,
              "styles": tuple(STYLES)},
}
SWD_PROJECTIONS, SWD_PIXELS, SEED = 64, 4096, 0


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def load(path: Path, long_side: int | None = None) -> torch.Tensor:
    image = image_to_batch(read_image(path).rgb)
    return resize_long_side(image, long_side) if long_side else image


def load_photo(content: str, sizing: tuple[str, int]) -> torch.Tensor:
    image = load(DATA / "content" / f"{content}.jpg")
    side, pixels = sizing
    h, w = image.shape[-2:]
    return resize_long_side(image, pixels if side == "long" else round(pixels * max(h, w) / min(h, w)))


def cell_key(protocol: str, style: str, content: str, tapset: str, factor: float, size: int) -> str:
    return f"{protocol}__{style}__{content}__{tapset}__x{factor:g}__s{size}"


def objective_config(tapset: str, factor: float, size: int) -> ObjectiveConfig:
    """The objective of a setting, as `livestyle train style` options would give it."""
    weights = TAPSETS[tapset]
    return ObjectiveConfig(loss_net="squeezenet1_1", content_taps=("fire4",), style_taps=tuple(weights),
                           content_weight=CONTENT_WEIGHT, style_weight=factor * BASE_STYLE_WEIGHT,
                           tv_weight=TV_WEIGHT, style_tap_weights=weights, style_size=size).resolved()


def train_options(tapset: str, factor: float, size: int) -> str:
    weights = TAPSETS[tapset]
    return (f"--content-taps fire4 --style-taps {','.join(weights)} "
            f"--style-tap-weights {','.join(f'{t}={w:g}' for t, w in weights.items())} "
            f"--style-weight {factor * BASE_STYLE_WEIGHT:g} --style-size {size} "
            f"--content-weight {CONTENT_WEIGHT:g} --tv-weight {TV_WEIGHT:g}")


# ---------------------------------------------------------------- yardsticks

def to_lab(image: torch.Tensor) -> np.ndarray:
    """(1, 3, H, W) sRGB [0, 1] → (H·W, 3) CIE Lab (D65 white; L 0..100)."""
    rgb = image[0].permute(1, 2, 0).reshape(-1, 3).double().numpy()
    linear = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    xyz = linear @ np.array([[0.4124564, 0.3575761, 0.1804375],
                             [0.2126729, 0.7151522, 0.0721750],
                             [0.0193339, 0.1191920, 0.9503041]]).T
    xyz /= np.array([0.95047, 1.0, 1.08883])
    eps, kappa = 216 / 24389, 24389 / 27
    f = np.where(xyz > eps, np.cbrt(xyz), (kappa * xyz + 16) / 116)
    return np.stack([116 * f[:, 1] - 16, 500 * (f[:, 0] - f[:, 1]), 200 * (f[:, 1] - f[:, 2])], axis=1)


def sliced_wasserstein(a: np.ndarray, b: np.ndarray, projections: int = SWD_PROJECTIONS,
                       pixels: int = SWD_PIXELS, seed: int = SEED) -> float:
    """Mean over random unit directions of the 1-D Wasserstein-1 distance between two point sets
    (rows), each subsampled to ``pixels`` points with a fixed seed: a colour-distribution distance in
    the units of the points (Lab here)."""
    rng = np.random.default_rng(seed)
    a = a[rng.choice(len(a), pixels, replace=len(a) < pixels)]
    b = b[rng.choice(len(b), pixels, replace=len(b) < pixels)]
    directions = rng.normal(size=(projections, a.shape[1]))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    pa, pb = np.sort(a @ directions.T, axis=0), np.sort(b @ directions.T, axis=0)
    return float(np.abs(pa - pb).mean())


class Yardstick:
    """The fixed measurements of an output: raw Gram loss per tap vs the painting (resized to the
    photo's long side), their deep sum, the Lab colour distance, and the fire4 loss vs the photo."""

    def __init__(self, paintings: dict[str, torch.Tensor], photos: dict[str, torch.Tensor]):
        self.net = loss_network("squeezenet1_1", taps=ALL_TAPS, weights=LOSSNET)
        self.grams, self.lab, self.content_fire4 = {}, {}, {}
        with torch.no_grad():
            for content, photo in photos.items():
                self.content_fire4[content] = self.net(photo)["fire4"]
                long_side = max(photo.shape[-2:])
                for style, painting in paintings.items():
                    scaled = resize_long_side(painting, long_side)
                    features = self.net(scaled)
                    self.grams[style, content] = {t: gram_matrix(features[t]) for t in ALL_TAPS}
                    self.lab[style, content] = to_lab(scaled)

    @torch.no_grad()
    def measure(self, image: torch.Tensor, style: str, content: str) -> dict:
        features = self.net(image)
        grams = self.grams[style, content]
        per_tap = {t: float(style_loss(gram_matrix(features[t]), grams[t])) for t in ALL_TAPS}
        return {"deep_style_loss": sum(per_tap[t] for t in DEEP),
                "swd_lab": sliced_wasserstein(to_lab(image), self.lab[style, content]),
                "content_fire4": float(feature_loss(features["fire4"], self.content_fire4[content])),
                "style_loss_per_tap": per_tap}


# ---------------------------------------------------------------- the study

class Study:
    def __init__(self, protocol: str):
        RESULTS.mkdir(parents=True, exist_ok=True)
        CACHE.mkdir(parents=True, exist_ok=True)
        self.protocol, self.p = protocol, PROTOCOLS[protocol]
        self.json_path = RESULTS / "results.json"
        self.data = json.loads(self.json_path.read_text()) if self.json_path.is_file() else {}
        self.data.setdefault("cells", {})
        self.data.setdefault("references", {})
        self.data["meta"] = {
            "cpu": cpu_model(), "threads": torch.get_num_threads(), "torch": torch.__version__,
            "protocols": PROTOCOLS, "optimizer": "lbfgs (livestyle.gatys.optimize_image)",
            "base_style_weight": BASE_STYLE_WEIGHT, "content_weight": CONTENT_WEIGHT, "tv_weight": TV_WEIGHT,
            "content_taps": ["fire4"], "tapsets": TAPSETS, "factors": FACTORS, "chosen": CHOSEN,
            "yardstick": {"deep_taps": DEEP, "painting_long_side": "the photo's", "swd_projections": SWD_PROJECTIONS,
                          "swd_pixels": SWD_PIXELS, "seed": SEED, "colour_space": "CIE Lab (D65)"},
            "lossnet": LOSSNET.name,
        }
        self.paintings = {s: load(DATA / "styles" / f) for s, f in STYLES.items()}
        self.photos = {c: load_photo(c, self.p["content"]) for c in CONTENTS}
        self.yardstick = Yardstick(self.paintings, self.photos)
        self.lossnets: dict[tuple, object] = {}

    def save(self) -> None:
        tmp = self.json_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=1) + "\n")
        tmp.replace(self.json_path)

    def lossnet(self, taps: tuple[str, ...]):
        if taps not in self.lossnets:
            self.lossnets[taps] = loss_network("squeezenet1_1", taps=taps, weights=LOSSNET)
        return self.lossnets[taps]

    def references(self) -> None:
        """The photo itself and the shipped small models' feed-forward outputs, on the yardsticks."""
        refs = self.data["references"]
        for style in self.p["styles"]:
            for content, photo in self.photos.items():
                key = f"{self.protocol}__{style}__{content}__photo"
                if key not in refs:
                    refs[key] = self.yardstick.measure(photo, style, content)
                key = f"{self.protocol}__{style}__{content}__shipped"
                model_file = REPO / "weights" / f"{style}_small.safetensors"
                if key not in refs and model_file.is_file():
                    model, _ = load_model_file(model_file)
                    with torch.no_grad():
                        out = model.eval()(photo).clamp(0, 1)
                    refs[key] = {**self.yardstick.measure(out, style, content), "model": model_file.name,
                                 "size": list(photo.shape[-2:])}
                    save_jpeg(out, CACHE / f"{key}.jpg")
        self.save()

    def run_cell(self, style: str, content: str, tapset: str, factor: float, size: int, stage: str) -> dict:
        key = cell_key(self.protocol, style, content, tapset, factor, size)
        done = self.data["cells"].get(key)
        if done and (CACHE / f"{key}.jpg").is_file():
            return done
        config = objective_config(tapset, factor, size)
        study_size = round(size * self.p["style_scale"])
        objective = PerceptualObjective.from_config(config, self.lossnet(config.taps),
                                                    resize_long_side(self.paintings[style], study_size))
        photo = self.photos[content]
        result = optimize_image(objective, photo, GatysConfig(iterations=self.p["iterations"], init=self.p["init"],
                                                              seed=SEED))
        record = {
            "protocol": self.protocol, "stage": stage, "style": style, "painting": STYLES[style], "content": content,
            "content_hw": list(photo.shape[-2:]), "init": self.p["init"], "iterations": self.p["iterations"],
            "tapset": tapset, "style_taps": list(config.style_taps), "style_tap_weights": dict(config.style_tap_weights),
            "style_weight_factor": factor, "style_weight": config.style_weight, "style_size": size,
            "style_size_as_optimised": study_size, "content_weight": config.content_weight,
            "tv_weight": config.tv_weight, "train_options": train_options(tapset, factor, size),
            "seconds": round(result.seconds, 2), "cpu": self.data["meta"]["cpu"], "final_terms": result.terms,
            **self.yardstick.measure(result.image, style, content),
        }
        save_jpeg(result.image, CACHE / f"{key}.jpg")
        self.data["cells"][key] = record
        self.save()
        print(f"{key}: {record['seconds']:.1f} s, {measure_lines(record)}", flush=True)
        return record

    def stage_settings(self, stage: str, style: str) -> list[tuple]:
        if stage == "1":
            return [(t, f, STAGE1_SIZE) for t in STAGE1_TAPSETS for f in FACTORS]
        if stage in ("2", "3"):
            plan = STAGE2 if stage == "2" else STAGE3
            return [(t, f, s) for t, (sizes, factors) in plan.items() for s in sizes for f in factors]
        return list(dict.fromkeys([TODAY_SETTING, CHOSEN[style]]))

    def run_stage(self, stage: str) -> None:
        cells = [(s, c, *x) for s in self.p["styles"] for x in self.stage_settings(stage, s) for c in CONTENTS]
        start = time.perf_counter()
        for i, (style, content, tapset, factor, size) in enumerate(cells, 1):
            self.run_cell(style, content, tapset, factor, size, stage)
            if i % 8 == 0 or i == len(cells):
                print(f"{self.protocol} stage {stage}: {i}/{len(cells)} cells, {time.perf_counter() - start:.0f} s",
                      flush=True)


# ---------------------------------------------------------------- pictures and tables

def save_jpeg(image: torch.Tensor, path: Path, quality: int = 92) -> None:
    array = (image[0].permute(1, 2, 0).clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8)
    tmp = path.with_name(path.stem + ".tmp.jpg")
    PILImage.fromarray(array).save(tmp, quality=quality)
    tmp.replace(path)


FONT = ImageFont.load_default(size=13)
BOLD = ImageFont.load_default(size=15)
CELL_W = 320


def fit(image: PILImage.Image, width: int = CELL_W) -> PILImage.Image:
    return image.resize((width, max(1, round(image.height * width / image.width))), PILImage.LANCZOS)


def tile(images: list[PILImage.Image], lines: list[str], highlight: bool = False) -> PILImage.Image:
    """Images stacked, text lines under them; a red frame where ``highlight``."""
    images = [fit(i) for i in images]
    text_h = 17 * len(lines) + 6
    out = PILImage.new("RGB", (CELL_W + 8, sum(i.height for i in images) + text_h + 8), "white")
    y = 4
    for image in images:
        out.paste(image, (4, y))
        y += image.height
    draw = ImageDraw.Draw(out)
    for n, line in enumerate(lines):
        draw.text((6, y + 4 + 17 * n), line, fill="black", font=BOLD if n == 0 else FONT)
    if highlight:
        draw.rectangle([0, 0, out.width - 1, out.height - 1], outline=(220, 0, 0), width=4)
    return out


def grid(rows: list[list[PILImage.Image]], title: str) -> PILImage.Image:
    cols = max(len(r) for r in rows)
    col_w = max(t.width for r in rows for t in r)
    heights = [max(t.height for t in r) for r in rows]
    sheet = PILImage.new("RGB", (cols * col_w, 28 + sum(heights)), (235, 235, 235))
    ImageDraw.Draw(sheet).text((8, 6), title, fill="black", font=BOLD)
    y = 28
    for r, h in zip(rows, heights):
        for n, t in enumerate(r):
            sheet.paste(t, (n * col_w, y))
        y += h
    return sheet


def measure_lines(m: dict) -> str:
    return f"deep {m['deep_style_loss']:.3g}  SWD {m['swd_lab']:.1f}  c4 {m['content_fire4']:.0f}"


class MissingImages(Exception):
    """A cell was run but its image is not here (cache/ is not committed): keep the committed sheet."""


def cell_image(key: str) -> Path:
    """A cell's image: in cache/, else the copy in results/chosen/ (chosen and today's cells only)."""
    if (CACHE / f"{key}.jpg").is_file():
        return CACHE / f"{key}.jpg"
    protocol, style, content, setting = key.split("__", 3)
    copies = sorted((RESULTS / "chosen").glob(f"{protocol}_{style}_{content}_*_{setting}.jpg"))
    if not copies:
        raise MissingImages(key)
    return copies[0]


def cell_tile(data: dict, protocol: str, style: str, tapset: str, factor: float, size: int) -> PILImage.Image:
    lines = [f"{tapset}  sw x{factor:g} ({factor * BASE_STYLE_WEIGHT:.1e})  style {size}"]
    images = []
    for content in CONTENTS:
        key = cell_key(protocol, style, content, tapset, factor, size)
        if key not in data["cells"]:
            return tile([PILImage.new("RGB", (CELL_W, 200), "grey")], lines + ["(not run)"])
        images.append(PILImage.open(cell_image(key)))
        lines.append(f"{content[:7]}: " + measure_lines(data["cells"][key]))
    chosen = protocol != "pilot" and CHOSEN.get(style) == (tapset, factor, size)
    return tile(images, lines, highlight=chosen)


def header_row(data: dict, protocol: str, style: str) -> list[PILImage.Image]:
    painting = PILImage.open(DATA / "styles" / STYLES[style]).convert("RGB")
    row = [tile([painting], [f"painting: {STYLES[style]}"])]
    photos, shipped, lines_p, lines_s = [], [], ["photo (reference)"], [f"shipped {style}_small (feed-fwd)"]
    for content in CONTENTS:
        photos.append(PILImage.open(DATA / "content" / f"{content}.jpg").convert("RGB"))
        ref = data["references"].get(f"{protocol}__{style}__{content}__photo")
        if ref:
            lines_p.append(f"{content[:7]}: " + measure_lines(ref))
        key = f"{protocol}__{style}__{content}__shipped"
        if key in data["references"] and (CACHE / f"{key}.jpg").is_file():
            shipped.append(PILImage.open(CACHE / f"{key}.jpg"))
            lines_s.append(f"{content[:7]}: " + measure_lines(data["references"][key]))
    row.append(tile(photos, lines_p))
    if shipped:
        row.append(tile(shipped, lines_s))
    return row


def describe(protocol: str) -> str:
    p = PROTOCOLS[protocol]
    side, pixels = p["content"]
    return (f"L-BFGS {p['iterations']} it from the {'photo' if p['init'] == 'content' else 'noise'}, photos at "
            f"{side} side {pixels}, style as optimised = {p['style_scale']:.2g} x the size named; content fire4 x1, "
            f"TV 1e4.  deep = sum fire6..9 Gram loss, SWD = Lab colour distance, c4 = fire4 content loss")


def sheets(data: dict) -> None:
    """Every contact sheet whose cells' images are here; a sheet whose images are not (cache/ is not
    committed) is left as it was drawn."""
    def draw(path: Path, title: str, rows: Callable[[], list[list[PILImage.Image]]]) -> None:
        try:
            grid(rows(), title).save(path, quality=88)
        except MissingImages as missing:
            print(f"{path.name}: cell {missing} has no image here (cache/ is not committed); left as it is")

    for protocol, p in PROTOCOLS.items():
        for style in p["styles"]:
            title = f"{style} [{protocol}] {describe(protocol)}"
            have = lambda t, f, s: any(cell_key(protocol, style, c, t, f, s) in data["cells"] for c in CONTENTS)  # noqa
            tiles = lambda settings: [cell_tile(data, protocol, style, *x) for x in settings]  # noqa
            if protocol == "final":
                settings = [x for x in dict.fromkeys([TODAY_SETTING, CHOSEN[style]]) if have(*x)]
                if settings:
                    draw(RESULTS / f"sheet_{style}_final.jpg", "FINAL (training geometry)  " + title,
                         lambda: [header_row(data, protocol, style), tiles(settings)])
                continue
            name = "pilot_content_init" if protocol == "pilot" else "stage1"
            if any(have(t, f, STAGE1_SIZE) for t in STAGE1_TAPSETS for f in FACTORS):
                draw(RESULTS / f"sheet_{style}_{name}.jpg", f"STAGE 1 (style {STAGE1_SIZE})  {title}",
                     lambda: [header_row(data, protocol, style)]
                     + [tiles([(t, f, STAGE1_SIZE) for f in FACTORS]) for t in STAGE1_TAPSETS])
            if protocol != "main":
                continue
            if any(have(t, f, s) for t, (ss, fs) in STAGE2.items() for f in fs for s in ss):
                draw(RESULTS / f"sheet_{style}_stage2.jpg", f"STAGE 2 (style sizes)  {title}",  # a column per size
                     lambda: [header_row(data, protocol, style)]
                     + [tiles([(t, f, s) for s in (STAGE1_SIZE, 384, 512)]) for t, (_, fs) in STAGE2.items() for f in fs])
            stage3 = [(t, f, s) for t, (ss, fs) in STAGE3.items() for f in fs for s in ss]
            if any(have(*x) for x in stage3):
                draw(RESULTS / f"sheet_{style}_stage3.jpg", f"STAGE 3 (chosen vs + deep taps at 1/12)  {title}",
                     lambda: [header_row(data, protocol, style), tiles([CHOSEN[style], *stage3])])


def table(data: dict) -> None:
    """results/table.md: every cell's measurements (mean over the two photos) and references."""
    lines = ["# Every cell (mean of chicago and hoovertowernight)", "",
             f"CPU: {data['meta']['cpu']}, 1 thread. deep = unweighted sum of the fire6..fire9 Gram losses vs the "
             "painting at the photo's long side; SWD = sliced Wasserstein distance in CIE Lab (W1, 64 projections); "
             "c4 = fire4 content loss; s = optimisation seconds per photo.", "",
             "| protocol | style | taps | sw factor | style size | deep | SWD | c4 | s |", "|---|---|---|---|---|---|---|---|---|"]
    groups: dict[tuple, list[dict]] = {}
    for r in data["cells"].values():
        groups.setdefault((r["protocol"], r["style"], r["tapset"], r["style_weight_factor"], r["style_size"]),
                          []).append(r)
    order = {p: i for i, p in enumerate(PROTOCOLS)}
    for key in sorted(groups, key=lambda k: (order[k[0]], list(STYLES).index(k[1]), list(TAPSETS).index(k[2]),
                                             k[4], k[3])):
        rs = groups[key]
        mean = lambda f: sum(f(r) for r in rs) / len(rs)  # noqa: E731
        mark = " **chosen**" if key[0] != "pilot" and CHOSEN.get(key[1]) == key[2:] else ""
        lines.append(f"| {key[0]} | {key[1]} | {key[2]}{mark} | x{key[3]:g} | {key[4]} | "
                     f"{mean(lambda r: r['deep_style_loss']):.3g} | {mean(lambda r: r['swd_lab']):.2f} | "
                     f"{mean(lambda r: r['content_fire4']):.0f} | {mean(lambda r: r['seconds']):.0f} |"
                     + ("" if len(rs) == len(CONTENTS) else f" ({len(rs)} photo)"))
    lines += ["", "## References (same yardsticks)", "", "| protocol | style | what | deep | SWD | c4 |", "|---|---|---|---|---|---|"]
    refs: dict[tuple, list[dict]] = {}
    for k, r in data["references"].items():
        protocol, style, _, what = k.split("__")
        refs.setdefault((protocol, style, what), []).append(r)
    for (protocol, style, what), rs in sorted(refs.items(), key=lambda kv: (order[kv[0][0]], kv[0][1], kv[0][2])):
        n = len(rs)
        lines.append(f"| {protocol} | {style} | {what} | {sum(r['deep_style_loss'] for r in rs) / n:.3g} | "
                     f"{sum(r['swd_lab'] for r in rs) / n:.2f} | {sum(r['content_fire4'] for r in rs) / n:.0f} |")
    (RESULTS / "table.md").write_text("\n".join(lines) + "\n")


def copy_chosen(data: dict) -> None:
    """results/chosen/: per style and photo, the chosen setting's, today's and stage 3's (the networks'
    training objective) outputs (main protocol, and the final protocol's where run)."""
    folder = RESULTS / "chosen"
    folder.mkdir(exist_ok=True)
    for protocol in ("main", "final"):
        for style in STYLES:
            stage3 = [("training", (t, f, sz)) for t, (ss, fs) in STAGE3.items() for f in fs for sz in ss]
            for label, setting in (("today", TODAY_SETTING), ("chosen", CHOSEN[style]), *stage3):
                for content in CONTENTS:
                    key = cell_key(protocol, style, content, *setting)
                    if (CACHE / f"{key}.jpg").is_file():
                        shutil.copyfile(CACHE / f"{key}.jpg", folder / f"{protocol}_{style}_{content}_{label}_"
                                                                       f"{key.split('__', 3)[3]}.jpg")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage", choices=["1", "2", "3", "final", "all"], default="all",
                        help="all: stages 1 and 2 (stage 3 and the final stage are run on their own: --stage 3|final)")
    parser.add_argument("--protocol", choices=list(PROTOCOLS), default=None,
                        help="Default: main for stages 1 and 2, final for the final stage.")
    parser.add_argument("--sheets-only", action="store_true", help="Only redraw sheets and table from the cache.")
    args = parser.parse_args()
    if not args.sheets_only:
        stages = ("1", "2") if args.stage == "all" else (args.stage,)
        for stage in stages:
            protocol = args.protocol or ("final" if stage == "final" else "main")
            study = Study(protocol)
            study.references()
            study.run_stage(stage)
            study.save()
    path = RESULTS / "results.json"
    data = json.loads(path.read_text())
    data["meta"].update({"chosen": CHOSEN, "stage2": STAGE2, "stage3": STAGE3, "tapsets": TAPSETS})  # as decided (findings.md)
    path.write_text(json.dumps(data, indent=1) + "\n")
    sheets(data)
    table(data)
    copy_chosen(data)
    return 0


def setting_of_entry(model_path: Path) -> tuple[str, float, int]:
    """(tapset, factor, style size) of the study setting a trained model's entry (MODEL.json) names."""
    entry = json.loads(model_path.with_suffix(".json").read_text())
    objective = entry["recipe"]["objective"]
    for tapset, weights in TAPSETS.items():
        if list(weights) == objective["style_taps"] and all(
                abs(objective["style_tap_weights"].get(t, 1.0) - w) < 1e-9 for t, w in weights.items()):
            factor = objective["style_weight"] / BASE_STYLE_WEIGHT
            return tapset, float(f"{factor:.6g}"), int(objective["style_size"])
    raise SystemExit(f"{model_path}: its objective is none of the study's settings; give --tapset/--factor/--size")


def eval_models(argv: list[str]) -> int:
    """`run.py eval-models`: feed-forward models on the study's yardsticks, beside their Gatys cells."""
    parser = argparse.ArgumentParser(prog="run.py eval-models", description=eval_models.__doc__)
    parser.add_argument("models", nargs="+")
    parser.add_argument("--style", required=True, choices=list(STYLES))
    parser.add_argument("--tapset", default=None, choices=list(TAPSETS),
                        help="Objective to score with (default: the one in each model's .json entry, which must be "
                             "one of the study's settings)")
    parser.add_argument("--factor", type=float, default=1)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--protocol", default="final", choices=["main", "final"],
                        help="Photo geometry (and the Gatys cells compared with): final = training's (short side 256)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--label", default="")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    painting = load(DATA / "styles" / STYLES[args.style])
    photos = {c: load_photo(c, PROTOCOLS[args.protocol]["content"]) for c in CONTENTS}
    yard = Yardstick({args.style: painting}, photos)
    scale = PROTOCOLS[args.protocol]["style_scale"]

    def objective_for(tapset: str, factor: float, size: int):
        config = objective_config(tapset, factor, size)
        lossnet = loss_network("squeezenet1_1", taps=config.taps, weights=LOSSNET)
        return config, PerceptualObjective.from_config(config, lossnet, resize_long_side(painting, round(size * scale)))

    cells = {}
    results_file = RESULTS / "results.json"
    if results_file.is_file():
        cells = json.loads(results_file.read_text())["cells"]
    fixed = objective_for(args.tapset, args.factor, args.size) if args.tapset else None

    records = []
    for model_path in args.models:
        model, _ = load_model_file(model_path)
        model.eval()
        setting = (args.tapset, args.factor, args.size) if fixed else setting_of_entry(Path(model_path))
        config, objective = fixed or objective_for(*setting)
        for content, photo in photos.items():
            with torch.no_grad():
                image = model(photo).clamp(0, 1)
                terms = objective(image, photo).as_floats()
            gatys = cells.get(cell_key(args.protocol, args.style, content, *setting), {})
            record = {"model": str(model_path), "label": args.label, "style": args.style, "content": content,
                      "protocol": args.protocol, "photo_hw": list(photo.shape[-2:]),
                      "objective": {"tapset": setting[0], "factor": setting[1], "style_size": setting[2]},
                      "terms": terms, "gatys_terms": gatys.get("final_terms"),
                      **yard.measure(image, args.style, content)}
            save_jpeg(image, out / f"{Path(model_path).stem}_{args.label or 'eval'}_{content}.jpg")
            records.append(record)
            g = record["gatys_terms"]
            print(f"{Path(model_path).name} {content}: total {terms['total']:.4g} (gatys "
                  f"{g['total'] if g else float('nan'):.4g}) content {terms['content']:.4g} style {terms['style']:.4g} "
                  f"tv {terms['tv']:.4g} | {measure_lines(record)}", flush=True)
    log = out / "eval.json"
    previous = json.loads(log.read_text()) if log.is_file() else []
    log.write_text(json.dumps(previous + records, indent=1) + "\n")
    return 0


def frame_time() -> int:
    """`run.py frame-time`: CPU time per 640x480 frame of the pixel-shuffle net at width 8 and 16 (one thread)."""
    frame = torch.rand(1, 3, 480, 640)
    for width in (8, 16):
        torch.manual_seed(0)
        model = transform_net(width=width, blocks=5, pixel_shuffle=True, margin=16).eval()
        walls, cpus = [], []
        with torch.no_grad():
            for i in range(35):
                w0, c0 = time.perf_counter(), time.process_time()
                model(frame)
                if i >= 5:
                    walls.append(time.perf_counter() - w0)
                    cpus.append(time.process_time() - c0)
        params = sum(p.numel() for p in model.parameters())
        print(f"width {width}: {1000 * statistics.median(walls):.1f} ms wall, {1000 * statistics.median(cpus):.1f} ms "
              f"CPU per 640x480 frame ({params} parameters; {cpu_model()}, {torch.get_num_threads()} thread)")
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["eval-models"]:
        sys.exit(eval_models(sys.argv[2:]))
    if sys.argv[1:2] == ["frame-time"]:
        sys.exit(frame_time())
    sys.exit(main())
