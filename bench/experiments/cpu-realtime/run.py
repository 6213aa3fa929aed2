"""Issue 9's CPU target, measured: speed at 640×480 and perceptual loss of each CPU style model, per engine.

    .venv/bin/python bench/experiments/cpu-realtime/run.py [--names kandinsky_small,wave_small] [--rounds 5]
        [--note TEXT] [--out DIR]

For each catalog style model: the model-only latency at 480×640 (batch 1, median of interleaved
rounds, so every engine sees the same machine load) of ONNX Runtime FP32, torch FP32 and torch BF16
(where the CPU has it natively; NCHW and channels_last); then the recipe's objective (its loss
network, taps and weights) on every photo in the shared content/ folder at 640 on the long side,
for each engine's output. Writes ``cpu-realtime.json`` and ``.md`` under ``--out`` (default: results/
beside this script; each kept run has its own subfolder there, see findings.md).
"""
from __future__ import annotations

import argparse
import os
import statistics
from functools import partial
from pathlib import Path

import torch

from livestyle.benchmarks.timing import interleaved_times, p90
from livestyle.engines.device import cpu_has_native_bf16, cpu_model
from livestyle.engines.onnx_engine import OnnxRuntimeEngine
from livestyle.engines.torch_engine import TorchEngine
from livestyle.files import write_json_and_markdown
from livestyle.io.images import read_image
from livestyle.models.convention import image_to_batch
from livestyle.quality.objective import build_objective, resize_long_side
from livestyle.quality.style_eval import objective_config_from_recipe
from livestyle.zoo.catalog import Catalog, describe_arch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]


def engines_for(model: torch.nn.Module) -> dict:
    """The CPU engines, by the name each reports."""
    engines = [OnnxRuntimeEngine(model, device="cpu"), TorchEngine(model, device="cpu")]
    if cpu_has_native_bf16():
        engines += [TorchEngine(model, device="cpu", precision="bf16"),
                    TorchEngine(model, device="cpu", precision="bf16", channels_last=True)]
    return {engine.name: engine for engine in engines}


def measure_model(name: str, entry, engines: dict, *, frame: torch.Tensor, contents: list[Path], shared: Path,
                  weights: str, long_side: int, rounds: int, iters: int) -> list[dict]:
    """One row per engine (label → engine): latency on ``frame`` in interleaved rounds, so every engine
    sees the same machine load, and the model's recipe objective on ``contents``, averaged."""
    times = interleaved_times({k: partial(e, frame) for k, e in engines.items()}, rounds=rounds, iters=iters)
    style = image_to_batch(read_image(shared / "styles" / entry.recipe["style_image"]["file"]).rgb)
    objective = build_objective(objective_config_from_recipe(entry.recipe), style, weights=weights)
    rows = []
    for label, engine in engines.items():
        mean = mean_losses(engine, objective, contents, long_side)
        rows.append({"model": name, "arch": entry.arch, "engine": label, "h": frame.shape[-2], "w": frame.shape[-1],
                     "ms_median": statistics.median(times[label]), "ms_p90": p90(times[label]), "loss": mean})
        print(f"{name:18s} {label:28s} {rows[-1]['ms_median']:7.1f} ms  total {mean['total']:.5g}", flush=True)
    return rows


def change_from_first(rows: list[dict]) -> list[float]:
    """Each row's total loss relative to the first row of its model (the FP32 reference)."""
    reference: dict[str, float] = {}
    return [row["loss"]["total"] / reference.setdefault(row["model"], row["loss"]["total"]) - 1 for row in rows]


METHOD_NOTE = ("Latency: 480×640 input, batch 1, model only, median of interleaved rounds. Loss: the model's recipe "
               "objective, mean over {contents} at {long_side} on the long side; 'vs FP32' compares with the same "
               "model's ONNX Runtime FP32 output.")


def mean_losses(engine, objective, contents: list[Path], long_side: int) -> dict[str, float]:
    """The objective's terms for ``engine``'s output on each content photo (at ``long_side``), averaged."""
    losses = []
    for path in contents:
        content = resize_long_side(image_to_batch(read_image(path).rgb), long_side)
        with torch.no_grad():
            losses.append(objective(engine(content).float().clamp(0, 1), content).as_floats())
    return {term: statistics.fmean(loss[term] for loss in losses) for term in losses[0]}


def arguments() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--weights", type=Path, default=ROOT / "weights", help="catalog folder")
    parser.add_argument("--names", default=None, help="Comma-separated catalog styles (default: small variants).")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--iters", type=int, default=8)
    parser.add_argument("--size", type=int, default=640,
                        help="long side the photos are scored at")
    parser.add_argument("--note", default="", help="machine conditions, written into the report")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    return parser


def models_and_photos(args) -> tuple[Catalog, list[str], list[Path], str]:
    """(catalog, style names to measure, content photos, loss-network weights file) for ``args``."""
    catalog = Catalog(args.weights)
    names = args.names.split(",") if args.names else [e.name for e in catalog.entries.values()
                                                      if e.task == "style" and e.variant == "small"]
    contents = sorted((args.shared / "content").glob("*.jpg"))
    weights = os.environ.get("LIVESTYLE_LOSSNET_WEIGHTS",
                             str(args.shared / "lossnets" / "squeezenet1_1_imagenet.safetensors"))
    return catalog, names, contents, weights


def main() -> None:
    args = arguments().parse_args()
    torch.manual_seed(0)
    catalog, names, contents, weights = models_and_photos(args)
    frame = torch.rand(1, 3, 480, 640)
    rows = []
    for name in names:
        entry = catalog.get(name, "style")
        rows += measure_model(name, entry, engines_for(catalog.load(entry)), frame=frame, contents=contents,
                              shared=args.shared, weights=weights, long_side=args.size, rounds=args.rounds,
                              iters=args.iters)
    result = {"device": f"CPU: {cpu_model()}, {os.cpu_count()} cores", "torch": torch.__version__,
              "threads": torch.get_num_threads(), "load_after": os.getloadavg(), "note": args.note,
              "contents": [p.name for p in contents], "loss_long_side": args.size, "rows": rows}
    write_json_and_markdown(args.out, "cpu-realtime", result, markdown(result))
    print(f"wrote {args.out}/cpu-realtime.json and .md")


def markdown(result: dict) -> str:
    lines = ["# CPU real-time style models: speed and loss per engine", "",
             f"{result['device']}, torch {result['torch']}, {result['threads']} threads. {result['note']}", "",
             METHOD_NOTE.format(contents=", ".join(result["contents"]), long_side=result["loss_long_side"]), "",
             "| model | describe_arch | engine | median ms | fps | total loss | vs FP32 |",
             "|---|---|---|---|---|---|---|"]
    for row, change in zip(result["rows"], change_from_first(result["rows"])):
        lines.append(f"| {row['model']} | {describe_arch(row['arch'])} | {row['engine']} | {row['ms_median']:.1f} | "
                     f"{1000 / row['ms_median']:.1f} | {row['loss']['total']:.5g} | {change:+.2%} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
