"""Choose SqueezeNet's style-training taps and weights by measurement (issue 8, item 3).

Trains one small style network per setting on the same photos with the same seed (CPU-sized:
width 16, 3 blocks, 160² crops, a few hundred iterations), stylises content/chicago.jpg with each,
scores every output on one common scale (raw fire4 content loss, raw Gram loss per tap), and writes
a contact sheet with the settings written on it plus a Markdown table:

    .venv/bin/python bench/experiments/squeezenet-taps/run.py [--iterations 400] [--threads 1] [--out DIR]

Writes squeezenet_taps.png and squeezenet_taps_table.md into --out (default: results/ beside this
script); findings.md beside it explains the choice. Models and logs go to --work (git-ignored
bench/carry/ by default); a setting whose model exists is not trained again, so the script can be
rerun to remake the sheet.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from livestyle.io.images import read_image
from livestyle.models.convention import image_to_batch
from livestyle.models.lossnets import loss_network
from livestyle.quality.losses import feature_loss, gram_matrix, style_loss
from livestyle.quality.objective import ObjectiveConfig, resize_long_side
from livestyle.training.recipes import RunOptions, StyleRecipe
from livestyle.training.run import train_style
from livestyle.zoo.modelfile import load_model_file

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]

STYLE_TAPS = ("conv1", "fire2", "fire3", "fire4", "fire5")
# Per-tap weights that make every tap's Gram loss start at a similar size on photo vs painting
# (measured: raw losses ≈ 0.56M, 7.9M, 7.6M, 12.9M, 2.5M for conv1…fire5 at 256²), so colour
# (conv1) and larger shapes (fire5) count as much as the middle taps.
BALANCED = {"conv1": 20.0, "fire2": 1.5, "fire3": 1.5, "fire4": 1.0, "fire5": 5.0}

SETTINGS = {
    "A": dict(label="content fire4; style conv1-fire5 equal; style 2e-2",
              objective=dict(content_taps=("fire4",), style_taps=STYLE_TAPS, style_weight=2e-2)),
    "B": dict(label="content fire4; style conv1-fire5 equal; style 5e-3",
              objective=dict(content_taps=("fire4",), style_taps=STYLE_TAPS, style_weight=5e-3)),
    "C": dict(label="content fire4; style balanced; style 2e-3",
              objective=dict(content_taps=("fire4",), style_taps=STYLE_TAPS, style_weight=2e-3,
                             style_tap_weights=BALANCED)),
    "D": dict(label="content fire2; style balanced; style 2e-3",
              objective=dict(content_taps=("fire2",), style_taps=STYLE_TAPS, style_weight=2e-3,
                             style_tap_weights=BALANCED)),
    # second round, after A-D all came out texture-heavy with B and C keeping most of the skyline
    "E": dict(label="content fire4; style balanced; style 5e-4",
              objective=dict(content_taps=("fire4",), style_taps=STYLE_TAPS, style_weight=5e-4,
                             style_tap_weights=BALANCED)),
    "F": dict(label="content fire4; style conv1-fire5 equal; style 1e-3",
              objective=dict(content_taps=("fire4",), style_taps=STYLE_TAPS, style_weight=1e-3)),
}


def train_setting(key: str, args, work: Path) -> dict:
    model_path = work / f"setting_{key}.safetensors"
    if model_path.is_file():
        return json.loads(model_path.with_suffix(".json").read_text())
    objective = ObjectiveConfig(loss_net="squeezenet1_1", tv_weight=args.tv_weight, style_size=args.size,
                                **SETTINGS[key]["objective"])
    recipe = StyleRecipe(style_image=str(args.style), dataset=str(args.dataset), objective=objective,
                         width=args.width, blocks=args.blocks, image_size=args.size, iterations=args.iterations,
                         batch_size=args.batch, seed=args.seed, data_limit=args.limit,
                         loss_net_weights=str(args.lossnet))
    log = open(work / f"setting_{key}.log", "w")
    start = time.perf_counter()
    result = train_style(recipe, model_path, RunOptions(device="cpu", progress=False, log_every=20),
                         on_log=lambda step, v: print(step, json.dumps(v), file=log, flush=True))
    print(f"setting {key}: {time.perf_counter() - start:.0f} s, final {result.final_losses}", flush=True)
    return result.entry


@torch.no_grad()
def common_scores(output: torch.Tensor, content: torch.Tensor, style: torch.Tensor, net) -> dict:
    """Raw (unweighted) fire4 content loss and Gram loss per tap: one scale for every setting."""
    fo, fc, fs = net(output), net(content), net(style)
    scores = {"content_fire4": float(feature_loss(fo["fire4"], fc["fire4"]))}
    for tap in STYLE_TAPS:
        scores[f"style_{tap}"] = float(style_loss(gram_matrix(fo[tap]), gram_matrix(fs[tap])))
    return scores


def label_tile(rgb: np.ndarray, lines: list[str]) -> np.ndarray:
    """uint8 RGB tile with a white band of text lines underneath (OpenCV putText)."""
    h, w = rgb.shape[:2]
    band = np.full((18 * len(lines) + 8, w, 3), 255, np.uint8)
    for i, line in enumerate(lines):
        cv2.putText(band, line, (6, 18 * i + 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([rgb, band])


def main() -> None:
    data = ROOT.parent / "shared" / "data"
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=HERE / "results")
    p.add_argument("--work", type=Path, default=ROOT / "bench" / "carry" / "squeezenet_taps")
    p.add_argument("--style", type=Path, default=data / "styles" / "composition_vii.jpg")
    p.add_argument("--dataset", type=Path, default=data / "train" / "caltech101_subset")
    p.add_argument("--content", type=Path, default=data / "content" / "chicago.jpg")
    p.add_argument("--lossnet", type=Path, default=data / "lossnets" / "squeezenet1_1_imagenet.safetensors")
    p.add_argument("--settings", default="".join(SETTINGS))
    p.add_argument("--iterations", type=int, default=400)
    p.add_argument("--size", type=int, default=160)
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--blocks", type=int, default=3)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--limit", type=int, default=400)
    p.add_argument("--tv-weight", type=float, default=1e4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--sheet-side", type=int, default=320, help="long side of chicago.jpg in the sheet")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    args.work.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)

    entries = {key: train_setting(key, args, args.work) for key in args.settings}

    net = loss_network("squeezenet1_1", taps=STYLE_TAPS, weights=args.lossnet)
    content = resize_long_side(image_to_batch(read_image(args.content).rgb), args.sheet_side)
    style = resize_long_side(image_to_batch(read_image(args.style).rgb), args.size)
    tiles, rows = [], []
    content_tile = (content[0].permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
    tiles.append(label_tile(content_tile, ["content: chicago.jpg", "", "", ""]))
    for key, entry in entries.items():
        model, _ = load_model_file(args.work / f"setting_{key}.safetensors")
        with torch.no_grad():
            output = model(content).clamp(0, 1)
        scores = common_scores(output, content, style, net)
        final = entry["recipe"]["final_losses"]
        rows.append((key, SETTINGS[key]["label"], final, scores))
        rgb = (output[0].permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
        tiles.append(label_tile(rgb, [f"{key}: {SETTINGS[key]['label'][:46]}", SETTINGS[key]["label"][46:],
                                      f"content(fire4) {scores['content_fire4']:.0f}",
                                      f"style conv1 {scores['style_conv1']:.3g} fire5 {scores['style_fire5']:.3g}"]))
    cols = 3 if len(tiles) > 4 else 2
    height, width = max(t.shape[0] for t in tiles), max(t.shape[1] for t in tiles)
    blank = np.full((height, width, 3), 255, np.uint8)
    padded = [np.pad(t, ((0, height - t.shape[0]), (0, width - t.shape[1]), (0, 0)), constant_values=255)
              for t in tiles]
    padded += [blank] * (-len(padded) % cols)
    sheet = np.concatenate([np.concatenate(padded[i:i + cols], axis=1) for i in range(0, len(padded), cols)])
    sheet_path = args.out / "squeezenet_taps.png"
    cv2.imwrite(str(sheet_path), sheet[..., ::-1])

    lines = [
        "# SqueezeNet style-training taps and weights (issue 8, item 3)", "",
        f"Each setting trained a TransformNet (width {args.width}, {args.blocks} blocks) for {args.iterations} "
        f"iterations, batch {args.batch}, Adam 1e-3, {args.size}² crops of the first {args.limit} photos of "
        f"caltech101_subset, style {args.style.name} at long side {args.size}, TV weight {args.tv_weight:g}, "
        f"seed {args.seed}, on this machine's CPU ({args.threads} thread(s)). Contact sheet: "
        f"`{sheet_path.name}` (chicago.jpg at long side {args.sheet_side}).", "",
        "Common scale (the same for every setting, on chicago.jpg): raw fire4 feature loss to the content, "
        "raw Gram loss per tap to the style image (unweighted, lower = closer).", "",
        "| setting | taps and weights | final training terms (own weights) | content fire4 | "
        + " | ".join(f"style {t}" for t in STYLE_TAPS) + " |",
        "|---|---|---|---|" + "---|" * len(STYLE_TAPS),
    ]
    for key, label, final, scores in rows:
        terms = ", ".join(f"{k} {v:.3g}" for k, v in final.items())
        lines.append(f"| {key} | {label} | {terms} | {scores['content_fire4']:.0f} | "
                     + " | ".join(f"{scores['style_' + t]:.3g}" for t in STYLE_TAPS) + " |")
    lines += ["", f"Balanced per-tap weights: {json.dumps(BALANCED)}.", ""]
    (args.out / "squeezenet_taps_table.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {sheet_path} and {args.out / 'squeezenet_taps_table.md'}")


if __name__ == "__main__":
    main()
