"""SR nets in BF16 on the CPU: PSNR/SSIM next to FP32, and the time of one 480×270 → ×4 frame.

    .venv/bin/python bench/experiments/sr-bf16/run.py [--names x4,x8] [--rounds 3] [--out DIR]

For each shipped SR model (x4, x8): PSNR/SSIM (Y, border = scale) on Set5 and Set14 of the same
model run by torch in FP32 and in BF16 (``--precision bf16``, the half precision of a CPU with native
BF16), and ONNX Runtime FP32 for reference; then the model-only latency of each engine on a 270×480
input (interleaved rounds). Writes ``sr-bf16.json`` and ``.md`` under ``--out`` (default: results/
beside this script).
"""
from __future__ import annotations

import argparse
import os
import statistics
from functools import partial
from pathlib import Path

import torch

from livestyle.benchmarks.timing import interleaved_times
from livestyle.engines.device import cpu_model
from livestyle.engines.onnx_engine import OnnxRuntimeEngine
from livestyle.engines.torch_engine import TorchEngine
from livestyle.files import write_json_and_markdown
from livestyle.quality.superres_eval import engine_upscaler, evaluate_sr_dataset
from livestyle.zoo.catalog import Catalog

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--iters", type=int, default=3)
    parser.add_argument("--names", default="x4,x8", help="comma-separated catalog SR models")
    parser.add_argument("--sets", default="Set5=CSet5,Set14=CSet14",
                        help="NAME=FOLDER under --shared/sr, comma-separated")
    parser.add_argument("--frame", default="270x480", help="HxW of the timed input")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()

    catalog = Catalog(ROOT / "weights")
    sets = {name: args.shared / "sr" / folder for name, folder in (item.split("=", 1) for item in args.sets.split(","))}
    h, w = (int(v) for v in args.frame.lower().split("x"))
    frame = torch.rand(1, 3, h, w)
    rows = []
    for name in args.names.split(","):
        model = catalog.load(catalog.get(name, "superres"))
        engines = {"onnxruntime-fp32": OnnxRuntimeEngine(model, device="cpu"),
                   "torch-fp32": TorchEngine(model, device="cpu"),
                   "torch-bf16": TorchEngine(model, device="cpu", precision="bf16")}
        upscalers = {key: engine_upscaler(engine) for key, engine in engines.items()}
        quality = {set_name: evaluate_sr_dataset(folder, model.scale, upscalers) for set_name, folder in sets.items()}
        times = interleaved_times({k: partial(e, frame) for k, e in engines.items()}, rounds=args.rounds,
                                  iters=args.iters)
        for key, engine in engines.items():
            rows.append({"model": name, "engine": engine.name, f"ms_median_{h}x{w}": statistics.median(times[key]),
                         **{s: {"psnr": q[key].psnr, "ssim": q[key].ssim} for s, q in quality.items()}})
            print(rows[-1], flush=True)
    result = {"device": f"CPU: {cpu_model()}, {os.cpu_count()} cores", "torch": torch.__version__,
              "load_after": os.getloadavg(), "rows": rows}
    lines = ["# SR models on the CPU: BF16 against FP32", "",
             f"{result['device']}, torch {torch.__version__}. PSNR/SSIM on the Y channel, border = scale, LR = "
             f"antialiased bicubic; latency: one {h}×{w} input, model only, median of interleaved rounds.", "",
             "| model | engine | " + " | ".join(f"{s} PSNR / SSIM" for s in sets) + f" | ms at {h}×{w} |",
             "|---|---|" + "---|" * len(sets) + "---|"]
    lines += [f"| {r['model']} | {r['engine']} | "
              + " | ".join(f"{r[s]['psnr']:.3f} / {r[s]['ssim']:.4f}" for s in sets)
              + f" | {r[f'ms_median_{h}x{w}']:.0f} |" for r in rows]
    write_json_and_markdown(args.out, "sr-bf16", result, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
