"""Experiment: does the edge band come from the loss network's borders? Fine-tune with and without them.

    .venv/bin/python bench/experiments/border-margin/loss_padding.py [--style kandinsky_small] [--steps 400] [--pad 32]

Two fine-tuning runs of a shipped small style model, same seed, data and steps (Adam 1e-3, batch 4,
256² crops of the first 1,200 training photos, the model's recipe objective):

- ``control``: the objective as trained;
- ``padded``: the loss network sees every image (output, content and style) reflection-padded by
  ``--pad`` pixels, so the output's edge pixels sit inside the loss network's view, away from its own
  zero-padded borders.

Then, per run and for the shipped model, at margins 0 and 16: the edge deviation and the recipe's
(unpadded) objective on the content photos, as in run.py beside this script. Writes
``loss-padding.json`` and ``.md`` under ``--out`` (default: results/ beside this script). Training
runs on the CPU.
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import os
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from livestyle.engines.device import cpu_model
from livestyle.files import write_json_and_markdown
from livestyle.io.images import read_image
from livestyle.models.convention import image_to_batch
from livestyle.models.transform import TransformNet
from livestyle.quality.objective import build_objective, resize_long_side
from livestyle.quality.style_eval import objective_config_from_recipe
from livestyle.training.data import StyleData, load_bank
from livestyle.zoo.catalog import Catalog

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
EDGE, INTERIOR = 4, 40  # as in run.py: rows/columns per edge, and the interior's distance from the edges


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


def fine_tune(model: TransformNet, objective, data: StyleData, steps: int) -> tuple[TransformNet, list[float]]:
    """``steps`` Adam steps on a copy of ``model`` (train mode, seeded batches); returns it in eval mode."""
    net = copy.deepcopy(model).train()  # train mode: no margin
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(1)
    history = []
    for _ in range(steps):
        content = data.batch(4, generator)
        loss = objective(net(content), content).total
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        history.append(loss.item())
    return net.eval(), history


def padded_view(objective, pad: int, style: torch.Tensor) -> None:
    """Make ``objective``'s loss network see reflection-padded images, and recompute its style Grams."""
    plain_forward = objective.lossnet.forward
    objective.lossnet.forward = lambda images: plain_forward(F.pad(images, (pad,) * 4, mode="reflect"))
    objective.set_style(style)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--data", type=Path, default=None, help="photos or pack (default: shared caltech101 subset)")
    parser.add_argument("--style", default="kandinsky_small")
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--pad", type=int, default=32)
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()

    torch.manual_seed(0)
    catalog = Catalog(ROOT / "weights")
    entry = catalog.get(args.style, "style")
    shipped = catalog.load(entry)
    weights = os.environ.get("LIVESTYLE_LOSSNET_WEIGHTS",
                             str(args.shared / "lossnets" / "squeezenet1_1_imagenet.safetensors"))
    config = objective_config_from_recipe(entry.recipe)
    style = resize_long_side(image_to_batch(read_image(args.shared / "styles" / entry.recipe["style_image"]["file"]).rgb),
                             config.style_size)
    data = StyleData(load_bank(args.data or args.shared / "train" / "caltech101_subset", short_side=256,
                               limit=1200), 256)
    models, runs = {"shipped": shipped}, {}
    for arm in ("control", "padded"):
        objective = build_objective(config, style, weights=weights)
        if arm == "padded":
            padded_view(objective, args.pad, style)
        start = time.perf_counter()
        models[arm], history = fine_tune(shipped, objective, data, args.steps)
        runs[arm] = {"seconds": time.perf_counter() - start, "first_50": sum(history[:50]) / 50,
                     "last_50": sum(history[-50:]) / 50}
        print(f"{arm}: {args.steps} steps in {runs[arm]['seconds']:.0f} s", flush=True)

    objective = build_objective(config, style, weights=weights)  # the recipe's, unpadded
    photos = [resize_long_side(image_to_batch(read_image(p).rgb), 640)
              for p in sorted((args.shared / "content").glob("*.jpg"))]
    rows = []
    with torch.inference_mode():
        for label, model in models.items():
            references = [with_margin(model, 64)(p) for p in photos]
            for margin in (0, 16):
                outs = [with_margin(model, margin)(p) for p in photos]
                rows.append({"model": label, "margin": margin,
                             "edge_deviation": mean_of([edge_deviation(o, r) for o, r in zip(outs, references)]),
                             "loss": mean_of([objective(o.clamp(0, 1), p).as_floats() for o, p in zip(outs, photos)])})
                d, loss = rows[-1]["edge_deviation"], rows[-1]["loss"]
                print(f"{label:8s} margin {margin:2d}  top {d['top']:5.1f} bottom {d['bottom']:5.1f} "
                      f"left {d['left']:5.1f} right {d['right']:5.1f}  total {loss['total']:.5g}", flush=True)
    result = {"device": f"CPU: {cpu_model()}, {os.cpu_count()} cores", "style": args.style, "steps": args.steps,
              "pad": args.pad, "runs": runs, "rows": rows}
    write_json_and_markdown(args.out, "loss-padding", result, markdown(result))
    print(f"wrote {args.out}/loss-padding.json and .md")


def markdown(result: dict) -> str:
    lines = [f"# Loss network on reflection-padded images: fine-tuning {result['style']} ({result['device']})", "",
             f"{result['steps']} fine-tuning steps from the shipped model, once with the recipe's objective "
             f"(control) and once with the loss network seeing every image reflection-padded by {result['pad']} px "
             "(padded). Edge columns as in border-margin.md (mean |output − output with margin 64|, outermost 4 "
             "rows/columns, 0..255); loss: the recipe's objective, unpadded, on the content photos at 640 px.", "",
             "| model | margin | top | bottom | left | right | content | style | total |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        d, loss = r["edge_deviation"], r["loss"]
        lines.append(f"| {r['model']} | {r['margin']} | {d['top']:.1f} | {d['bottom']:.1f} | {d['left']:.1f} | "
                     f"{d['right']:.1f} | {loss['content']:.5g} | {loss['style']:.5g} | {loss['total']:.5g} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
