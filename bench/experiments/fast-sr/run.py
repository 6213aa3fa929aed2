"""The CPU-fast SR networks (x4_fast, x8_fast) against the paper's (x4, x8): work and time per frame.

    .venv/bin/python bench/experiments/fast-sr/run.py macs [--names x4,x4_fast,x8,x8_fast]
    .venv/bin/python bench/experiments/fast-sr/run.py time [--names x4,x4_fast] [--frame 480x640] [--iters 3]

``macs``: multiply-adds per output pixel of each catalog model, counted by
``torch.utils.flop_counter`` on a 60×80 input (convolutions only: the bicubic skip and the pixel
shuffle are not counted; they are the same for both families). ``time``: CPU time of one frame
(model only, one thread, median of ``--iters`` calls after one warm-up) with ONNX Runtime FP32
(what ``auto`` runs on a CPU) and torch FP32, each model and engine in a process of its own so that
its peak memory (max RSS) is its own. Writes ``macs.{json,md}`` and ``frame-time-<HxW>.{json,md}``
under ``--out`` (default: results/ beside this script).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from livestyle.engines.device import cpu_model
from livestyle.files import write_json_and_markdown
from livestyle.zoo.catalog import Catalog

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
ENGINES = ("onnxruntime", "torch")


def macs_per_output_pixel(model: torch.nn.Module, h: int = 60, w: int = 80) -> float:
    """Multiply-adds of one forward pass on an h×w input, divided by its output pixels."""
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.rand(1, 3, h, w)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        y = model.eval()(x)
    return counter.get_total_flops() / 2 / (y.shape[-2] * y.shape[-1])


def machine() -> dict:
    return {"cpu": f"{cpu_model()}, {os.cpu_count()} cores", "torch": torch.__version__,
            "load_average": os.getloadavg()}


def count(args) -> None:
    catalog = Catalog(ROOT / "weights")
    rows = []
    for name in args.names.split(","):
        entry = catalog.get(name, "superres")
        model = catalog.load(entry)
        params = sum(p.numel() for p in model.parameters())
        rows.append({"model": name, "scale": model.scale, "arch": entry.arch, "parameters": params,
                     "macs_per_output_pixel": macs_per_output_pixel(model)})
    baseline = {r["scale"]: r["macs_per_output_pixel"] for r in rows if r["model"] == f"x{r['scale']}"}
    for r in rows:
        if r["scale"] in baseline:
            r["fewer_than_xN"] = baseline[r["scale"]] / r["macs_per_output_pixel"]
    lines = ["# Multiply-adds per output pixel", "",
             "Convolutions only (torch.utils.flop_counter, 60×80 input); the bicubic skip is not counted.", "",
             "| model | architecture | parameters | MACs / output pixel | × fewer than xN |", "|---|---|---|---|---|"]
    lines += [f"| {r['model']} | {r['arch']} | {r['parameters']:,} | {r['macs_per_output_pixel']:,.0f} | "
              f"{r.get('fewer_than_xN', float('nan')):.2f} |" for r in rows]
    write_json_and_markdown(args.out, "macs", {**machine(), "rows": rows}, "\n".join(lines) + "\n")
    print("\n".join(lines))


def time_one(name: str, engine_kind: str, h: int, w: int, iters: int) -> dict:
    """In this process: the median ms of one h×w frame through ``name`` on ``engine_kind``, one thread."""
    from livestyle.engines.onnx_engine import OnnxRuntimeEngine
    from livestyle.engines.torch_engine import TorchEngine

    torch.set_num_threads(1)
    catalog = Catalog(ROOT / "weights")
    model = catalog.load(catalog.get(name, "superres"))
    if engine_kind == "onnxruntime":
        engine = OnnxRuntimeEngine(model, device="cpu", threads=1)
    else:
        engine = TorchEngine(model, device="cpu")
    frame = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(0))
    engine(frame)  # warm-up (and, for ONNX Runtime, the export is cached before)
    times = []
    for _ in range(iters):
        begin = time.perf_counter()
        engine(frame)
        times.append((time.perf_counter() - begin) * 1000.0)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"model": name, "engine": engine.name, "ms": times, "ms_median": statistics.median(times),
            "peak_rss_mib": peak_mib}


def frame_time(args) -> None:
    h, w = (int(v) for v in args.frame.lower().split("x"))
    before = machine()
    rows = []
    for name in args.names.split(","):
        for kind in args.engines.split(","):
            done = subprocess.run([sys.executable, __file__, "time-one", name, kind, f"{h}x{w}", str(args.iters)],
                                  capture_output=True, text=True, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(rows[-1], flush=True)
    lines = [f"# One {h}×{w} frame on the CPU, one thread", "",
             f"{before['cpu']} (load average {before['load_average'][0]:.2f} before: another job held one core); "
             f"torch {torch.__version__}; model only, FP32, median of {args.iters} after a warm-up; peak memory is "
             "the process's max RSS (model, engine, one frame).", "",
             "| model | engine | output | s per frame | peak memory (GiB) |", "|---|---|---|---|---|"]
    scale = {r["model"]: Catalog(ROOT / "weights").get(r["model"]).arch["scale"] for r in rows}
    lines += [f"| {r['model']} | {r['engine']} | {w * scale[r['model']]}×{h * scale[r['model']]} | "
              f"{r['ms_median'] / 1000:.2f} | {r['peak_rss_mib'] / 1024:.2f} |" for r in rows]
    data = {**before, "load_average_after": os.getloadavg(), "frame": [h, w], "threads": 1, "rows": rows}
    write_json_and_markdown(args.out, f"frame-time-{h}x{w}", data, "\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "time-one":  # a child process of ``time``
        name, kind, frame, iters = sys.argv[2:6]
        h, w = (int(v) for v in frame.split("x"))
        print(json.dumps(time_one(name, kind, h, w, int(iters))))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    macs = commands.add_parser("macs", help="multiply-adds per output pixel")
    macs.add_argument("--names", default="x4,x4_fast,x8,x8_fast")
    timing = commands.add_parser("time", help="CPU time and peak memory of one frame")
    timing.add_argument("--names", default="x4,x4_fast")
    timing.add_argument("--engines", default=",".join(ENGINES))
    timing.add_argument("--frame", default="480x640", help="HxW of the input frame")
    timing.add_argument("--iters", type=int, default=3)
    for sub in (macs, timing):
        sub.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()
    count(args) if args.command == "macs" else frame_time(args)


if __name__ == "__main__":
    main()
