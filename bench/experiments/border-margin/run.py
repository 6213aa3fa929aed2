"""How far the band of strokes along the image edges reaches, per border margin, and what it costs.

    .venv/bin/python bench/experiments/border-margin/run.py [--names kandinsky_small,...] [--margins 0,4,8,16,24,32]

Perceptual-loss training leaves a band of strong strokes along the edges of every output (the style
loss rewards it). ``TransformNetConfig.margin`` hides it: at inference the input is reflection-padded
by the margin and the output cropped back. For each catalog style model (default: the small ones)
and each margin, on every photo in the shared content/ folder at 640 on the long side:

- edge deviation: mean |output − reference| (0..255 units) over the outermost 4 rows or columns of
  each edge, where the reference is the same model with a far larger margin (``--reference``);
  the same mean over the interior (40 px in from every edge) is the floor, since a margin also
  shifts the instance-norm statistics a little;
- the recipe's objective (content, style, TV and total loss, same loss network and weights);
- the time per 640×480 frame with the engine ``auto`` picks on this CPU (torch BF16 where the CPU
  has it natively, else torch FP32), every margin timed in turn each round (same machine load).

Writes ``border-margin.json``, ``.md`` and ``border-margin.png`` (the top-left corner of the first
photo at margins 0, 8 and 16, one row per model, enlarged 3×) under ``--out`` (default: results/
beside this script); findings.md beside it reads them.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
from functools import partial
from pathlib import Path

import numpy as np
import torch

from livestyle.benchmarks.timing import interleaved_times, p90
from livestyle.engines.device import cpu_has_native_bf16, cpu_model
from livestyle.engines.torch_engine import TorchEngine
from livestyle.files import write_json_and_markdown
from livestyle.io.images import Image, read_image, write_image
from livestyle.models.convention import image_to_batch
from livestyle.models.transform import TransformNet
from livestyle.quality.objective import build_objective, resize_long_side
from livestyle.quality.style_eval import objective_config_from_recipe
from livestyle.zoo.catalog import Catalog

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]

EDGE = 4  # rows/columns per edge in the edge deviation
INTERIOR = 40
SHEET_MARGINS = (0, 8, 16)


def with_margin(model: TransformNet, margin: int) -> TransformNet:
    """The same weights with another inference margin, in eval mode."""
    net = TransformNet(dataclasses.replace(model.config, margin=margin))
    net.load_state_dict(model.state_dict())
    return net.eval()


def edge_deviation(out: torch.Tensor, reference: torch.Tensor) -> dict[str, float]:
    """Mean |out − reference| × 255 over each edge's outermost rows/columns and over the interior."""
    d = (out - reference).abs().mean(dim=(0, 1)) * 255  # (H, W)
    return {"top": float(d[:EDGE].mean()), "bottom": float(d[-EDGE:].mean()), "left": float(d[:, :EDGE].mean()),
            "right": float(d[:, -EDGE:].mean()), "interior": float(d[INTERIOR:-INTERIOR, INTERIOR:-INTERIOR].mean())}


def mean_of(rows: list[dict[str, float]]) -> dict[str, float]:
    return {k: statistics.fmean(r[k] for r in rows) for k in rows[0]}


@torch.inference_mode()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--weights", type=Path, default=ROOT / "weights", help="catalog folder")
    parser.add_argument("--names", default=None, help="Comma-separated catalog styles (default: small variants).")
    parser.add_argument("--margins", default="0,4,8,16,24,32")
    parser.add_argument("--reference", type=int, default=64, help="margin of the reference output")
    parser.add_argument("--size", type=int, default=640, help="long side of the content photos")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--iters", type=int, default=4)
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()

    catalog = Catalog(args.weights)
    names = args.names.split(",") if args.names else [e.name for e in catalog.entries.values()
                                                      if e.task == "style" and e.variant == "small"]
    margins = [int(m) for m in args.margins.split(",")]
    contents = sorted((args.shared / "content").glob("*.jpg"))
    weights = os.environ.get("LIVESTYLE_LOSSNET_WEIGHTS",
                             str(args.shared / "lossnets" / "squeezenet1_1_imagenet.safetensors"))
    photos = [resize_long_side(image_to_batch(read_image(p).rgb), args.size) for p in contents]
    precision = "bf16" if cpu_has_native_bf16() else "fp32"
    frame = torch.rand(1, 3, 480, 640)
    rows, sheet = [], []
    for name in names:
        entry = catalog.get(name, "style")
        model = catalog.load(entry)
        style = image_to_batch(read_image(args.shared / "styles" / entry.recipe["style_image"]["file"]).rgb)
        objective = build_objective(objective_config_from_recipe(entry.recipe), style, weights=weights)
        references = [with_margin(model, args.reference)(p) for p in photos]
        nets = {m: with_margin(model, m) for m in margins}
        engines = {m: TorchEngine(net, device="cpu", precision=precision) for m, net in nets.items()}
        times = interleaved_times({m: partial(e, frame) for m, e in engines.items()}, rounds=args.rounds,
                                  iters=args.iters)
        corners = []
        for margin in margins:
            outs = [nets[margin](p) for p in photos]
            deviation = mean_of([edge_deviation(o, r) for o, r in zip(outs, references)])
            loss = mean_of([objective(o.clamp(0, 1), p).as_floats() for o, p in zip(outs, photos)])
            rows.append({"model": name, "margin": margin, "edge_deviation": deviation, "loss": loss,
                         "engine": engines[margin].name, "ms_median_640x480": statistics.median(times[margin]),
                         "ms_p90_640x480": p90(times[margin])})
            print(f"{name:18s} margin {margin:2d}  top {deviation['top']:5.1f} bottom {deviation['bottom']:5.1f} "
                  f"left {deviation['left']:5.1f} right {deviation['right']:5.1f} interior {deviation['interior']:4.1f}"
                  f"  total loss {loss['total']:.5g}  {rows[-1]['ms_median_640x480']:.1f} ms", flush=True)
            if margin in SHEET_MARGINS:
                corners.append(outs[0][0, :, :48, :160].permute(1, 2, 0).numpy())
        sheet.append(np.concatenate([np.pad(c, ((0, 0), (0, 4), (0, 0)), constant_values=1.0) for c in corners], 1))
    result = {"device": f"CPU: {cpu_model()}, {os.cpu_count()} cores", "torch": torch.__version__,
              "threads": torch.get_num_threads(), "load_after": os.getloadavg(),
              "contents": [p.name for p in contents], "long_side": args.size, "reference_margin": args.reference,
              "edge_rows": EDGE, "rows": rows}
    write_json_and_markdown(args.out, "border-margin", result, markdown(result))
    contact = np.concatenate([np.pad(s, ((0, 4), (0, 0), (0, 0)), constant_values=1.0) for s in sheet], 0)
    contact = np.repeat(np.repeat(contact, 3, axis=0), 3, axis=1)
    write_image(args.out / "border-margin.png", Image(contact.astype(np.float32)))
    print(f"wrote {args.out}/border-margin.json, .md and .png")


def markdown(result: dict) -> str:
    lines = [f"# Border margin: edge band and loss per margin ({result['device']})", "",
             f"Mean over {', '.join(result['contents'])} at {result['long_side']} px on the long side. Edge columns: "
             f"mean |output − output with margin {result['reference_margin']}| in 0..255 units over the outermost "
             f"{result['edge_rows']} rows/columns of each edge; interior: the same 40 px in from every edge (what "
             "any margin shifts through the instance-norm statistics). Loss: the model's training objective. "
             "Time: model only, batch 1, 640×480, median (p90) of interleaved rounds, "
             f"{result['threads']} torch threads, load average after {result['load_after'][0]:.2f}.", "",
             "| model | margin | top | bottom | left | right | interior | content | style | total | "
             "ms per 640×480 frame |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        d, loss = r["edge_deviation"], r["loss"]
        lines.append(f"| {r['model']} | {r['margin']} | {d['top']:.1f} | {d['bottom']:.1f} | {d['left']:.1f} | "
                     f"{d['right']:.1f} | {d['interior']:.1f} | {loss['content']:.5g} | {loss['style']:.5g} | "
                     f"{loss['total']:.5g} | {r['ms_median_640x480']:.1f} ({r['ms_p90_640x480']:.1f}), "
                     f"{r['engine']} |")
    lines += ["", "border-margin.png: the top-left 160×48 of the first photo at margins "
              f"{', '.join(map(str, SHEET_MARGINS))} (left to right), one row per model, 3× enlarged."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
