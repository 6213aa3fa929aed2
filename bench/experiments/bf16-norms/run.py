"""BF16 on the CPU: instance norms in FP32 or torch's own BF16 ones? Time and error of both.

    .venv/bin/python bench/experiments/bf16-norms/run.py [--name kandinsky_small] [--iters 15] [--out DIR]

One catalog style model at 480×640 (chicago.jpg resized), torch with the CPU rewrites: FP32, then
BF16 with torch's instance norms (which accumulate in FP32 inside), then BF16 with every norm
computed on an FP32 copy (``safe_half_norms``, the CUDA engine's choice). Reports the median time
and the difference from FP32 in 8-bit levels. Writes ``bf16-norms.json`` and ``.md`` under ``--out``
(default: results/ beside this script).
"""
from __future__ import annotations

import argparse
import copy
import os
import statistics
import time
from pathlib import Path

import torch

from livestyle.engines.device import cpu_model
from livestyle.files import write_json_and_markdown
from livestyle.io.images import read_image
from livestyle.models.convention import image_to_batch
from livestyle.models.rewrites import rewrite_for_inference, safe_half_norms, to_half_keeping_norms_fp32
from livestyle.zoo.catalog import Catalog

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--name", default="kandinsky_small")
    parser.add_argument("--iters", type=int, default=15)
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()

    catalog = Catalog(ROOT / "weights")
    model = rewrite_for_inference(catalog.load(catalog.get(args.name, "style")), fused_norm=False)
    photo = image_to_batch(read_image(args.shared / "content" / "chicago.jpg").rgb)
    x = torch.nn.functional.interpolate(photo, size=(480, 640), mode="bilinear", antialias=True)
    nets = {"fp32": model,  # (the casts work in place, on copies)
            "bf16, torch's norms": to_half_keeping_norms_fp32(copy.deepcopy(model), torch.bfloat16),
            "bf16, FP32 norms": to_half_keeping_norms_fp32(safe_half_norms(model), torch.bfloat16)}
    rows, reference = [], None
    with torch.inference_mode():
        for label, net in nets.items():
            dtype = next(net.parameters()).dtype
            out = net(x.to(dtype)).float()
            reference = out if reference is None else reference
            times = []
            for _ in range(args.iters):
                start = time.perf_counter()
                net(x.to(dtype))
                times.append((time.perf_counter() - start) * 1000)
            levels = (out - reference).abs() * 255
            rows.append({"precision": label, "ms_median": statistics.median(times[3:]),
                         "mean_abs_levels": levels.mean().item(), "max_abs_levels": levels.max().item()})
            print(rows[-1], flush=True)
    result = {"device": f"CPU: {cpu_model()}, {os.cpu_count()} cores", "torch": torch.__version__,
              "model": args.name, "size": [480, 640], "load_after": os.getloadavg(), "rows": rows}
    lines = [f"# BF16 instance norms on the CPU ({args.name}, 480×640)", "",
             f"{result['device']}, torch {torch.__version__}. Difference from the FP32 output in 8-bit levels.", "",
             "| precision | median ms | mean abs diff | max abs diff |", "|---|---|---|---|"]
    lines += [f"| {r['precision']} | {r['ms_median']:.1f} | {r['mean_abs_levels']:.2f} | {r['max_abs_levels']:.1f} |"
              for r in rows]
    write_json_and_markdown(args.out, "bf16-norms", result, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
