"""SR nets in BF16 on the CPU: PSNR/SSIM next to FP32, and the time of one 480×270 → ×4 frame.

    .venv/bin/python bench/cpu_sr_bf16.py [--rounds 3] [--out DIR]

For each shipped SR model (x4, x8): PSNR/SSIM (Y, border = scale) on Set5 and Set14 of the same
model run by torch in FP32 and in BF16 (the ``--fp16`` engine on a CPU with native BF16), and ONNX
Runtime FP32 for reference; then the model-only latency of each engine on a 270×480 input
(interleaved rounds). Writes ``sr-bf16.json`` and ``.md`` under ``--out``.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
from functools import partial
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from livestyle._files import write_json_and_markdown  # noqa: E402
from livestyle.catalog import Catalog  # noqa: E402
from livestyle.engines import TorchEngine  # noqa: E402
from livestyle.engines.benchmark import cpu_model, interleaved_times  # noqa: E402
from livestyle.engines.onnx_engine import OnnxRuntimeEngine  # noqa: E402
from livestyle.evaluate import engine_upscaler, evaluate_sr_dataset  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--iters", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "cpu-realtime")
    args = parser.parse_args()

    catalog = Catalog(ROOT / "weights")
    sets = {"Set5": args.shared / "sr" / "CSet5", "Set14": args.shared / "sr" / "CSet14"}
    frame = torch.rand(1, 3, 270, 480)
    rows = []
    for name in ("x4", "x8"):
        model = catalog.load(catalog.get(name, "superres"))
        engines = {"onnxruntime-fp32": OnnxRuntimeEngine(model, device="cpu"),
                   "torch-fp32": TorchEngine(model, device="cpu"),
                   "torch-bf16": TorchEngine(model, device="cpu", precision="bf16")}
        upscalers = {key: engine_upscaler(engine) for key, engine in engines.items()}
        quality = {set_name: evaluate_sr_dataset(folder, model.scale, upscalers) for set_name, folder in sets.items()}
        times = interleaved_times({k: partial(e, frame) for k, e in engines.items()}, rounds=args.rounds,
                                  iters=args.iters)
        for key, engine in engines.items():
            rows.append({"model": name, "engine": engine.name, "ms_median_270x480": statistics.median(times[key]),
                         **{s: {"psnr": q[key].psnr, "ssim": q[key].ssim} for s, q in quality.items()}})
            print(rows[-1], flush=True)
    result = {"device": f"CPU: {cpu_model()}, {os.cpu_count()} cores", "torch": torch.__version__,
              "load_after": os.getloadavg(), "rows": rows}
    lines = ["# SR models on the CPU: BF16 against FP32", "",
             f"{result['device']}, torch {torch.__version__}. PSNR/SSIM on the Y channel, border = scale, LR = "
             "antialiased bicubic; latency: one 270×480 input, model only, median of interleaved rounds.", "",
             "| model | engine | Set5 PSNR / SSIM | Set14 PSNR / SSIM | ms at 270×480 |", "|---|---|---|---|---|"]
    lines += [f"| {r['model']} | {r['engine']} | {r['Set5']['psnr']:.3f} / {r['Set5']['ssim']:.4f} | "
              f"{r['Set14']['psnr']:.3f} / {r['Set14']['ssim']:.4f} | {r['ms_median_270x480']:.0f} |" for r in rows]
    write_json_and_markdown(args.out, "sr-bf16", result, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
