"""A/B of the space-to-depth output rewrite: the same exported net with and without it, runs interleaved.

    .venv/bin/python bench/experiments/s2d-output/run.py [--width 8] [--size 480x640] [--rounds 5] [--out DIR]

ONNX Runtime (CPU, all graph optimisations, default threads), same conditions for both graphs.
Prints the table; with --out (the kept run: results/ beside this script) also writes s2d-ab.json and .md.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
from functools import partial
from pathlib import Path

import numpy as np
import torch

from livestyle.benchmarks.timing import interleaved_times
from livestyle.engines.device import cpu_model
from livestyle.engines.export.onnx import INPUT_NAME, export_onnx
from livestyle.engines.onnx_engine import import_onnxruntime, session_options
from livestyle.models.rewrites import rewrite_for_inference
from livestyle.models.transform import transform_net


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--width", type=int, default=8)
    parser.add_argument("--size", default="480x640", help="HxW")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    h, w = map(int, args.size.split("x"))
    torch.manual_seed(0)
    model = transform_net(width=args.width, blocks=5).eval()
    ort = import_onnxruntime()
    x = np.random.default_rng(0).random((1, 3, h, w), dtype=np.float32)
    sessions, outputs = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, s2d in (("sub-pixel rewrite only", False), ("+ space-to-depth output", True)):
            path = Path(tmp) / f"{s2d}.onnx"
            export_onnx(rewrite_for_inference(model, fused_norm=False, space_to_depth_output=s2d), path)
            sessions[label] = ort.InferenceSession(str(path), session_options(ort), providers=["CPUExecutionProvider"])
            outputs[label] = sessions[label].run(None, {INPUT_NAME: x})[0]
    runs = {label: partial(session.run, None, {INPUT_NAME: x}) for label, session in sessions.items()}
    times = interleaved_times(runs, rounds=args.rounds, iters=args.iters, warmup=0)  # (each ran once above)
    a, b = outputs.values()
    result = {"device": f"CPU: {cpu_model()}, {os.cpu_count()} cores", "width": args.width, "size": [h, w],
              "load_after": os.getloadavg(), "max_abs_diff": float(np.abs(a - b).max()),
              "ms_median": {k: statistics.median(v) for k, v in times.items()},
              "ms_p90": {k: float(np.percentile(v, 90)) for k, v in times.items()}}
    lines = [f"# Space-to-depth output rewrite, A/B (width {args.width}, {h}×{w}, ONNX Runtime CPU)", "",
             f"{result['device']}; runs interleaved, {args.rounds}×{args.iters} each; load after "
             f"{result['load_after'][0]:.2f}; outputs differ by at most {result['max_abs_diff']:.1e}.", "",
             "| graph | median ms | p90 ms |", "|---|---|---|"]
    lines += [f"| {k} | {result['ms_median'][k]:.1f} | {result['ms_p90'][k]:.1f} |" for k in sessions]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        Path(args.out, "s2d-ab.json").write_text(json.dumps(result, indent=2) + "\n")
        Path(args.out, "s2d-ab.md").write_text(text)


if __name__ == "__main__":
    main()
