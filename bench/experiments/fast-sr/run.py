"""The CPU-fast SR networks (x4_fast, x8_fast) against the paper's (x4, x8): work and time per frame.

    .venv/bin/python bench/experiments/fast-sr/run.py macs [--names x4,x4_fast,x8,x8_fast]
    .venv/bin/python bench/experiments/fast-sr/run.py time [--cases x4:480x640,x4_fast:480x640,…] [--engines torch-fp32,…] [--iters 3]

``macs``: multiply-adds per output pixel of each catalog model, counted by
``torch.utils.flop_counter`` on a 60×80 input (convolutions only: the subpixel nets' bicubic skip,
a fixed 5×5 convolution, is counted, 75 per output pixel; the paper nets' ``F.interpolate`` is not,
at most 48: 4×4 taps × 3 channels). ``time``: CPU time of one frame, model only, one thread, on
every engine the CPU's ``--backend auto`` chooses from (``livestyle.engines.cpu_choice``: torch,
ONNX Runtime, OpenVINO; FP32, and BF16 where the CPU has it), timed by the engine table of
``livestyle bench engines``; each model and engine in a process of its own, so that its peak
memory is its own. Writes ``macs.{json,md}`` and ``<--name>.{json,md}`` under ``--out``
(default: results/ beside this script).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from livestyle.engines.device import cpu_model
from livestyle.files import write_json_and_markdown
from livestyle.zoo.catalog import Catalog

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
# ×4 of a 640×480 frame; ×8 of 320×240, the same 2560×1920 output (×8 of 640×480 needs ~25 GiB for x8)
CASES = "x4:480x640,x4_fast:480x640,x8:240x320,x8_fast:240x320"


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
             "Convolutions (torch.utils.flop_counter, 60×80 input): the subpixel nets' bicubic skip is a convolution "
             "and counted (75 per output pixel); the paper nets' F.interpolate is not (at most 48).", "",
             "| model | architecture | parameters | MACs / output pixel | × fewer than xN |", "|---|---|---|---|---|"]
    lines += [f"| {r['model']} | {r['arch']} | {r['parameters']:,} | {r['macs_per_output_pixel']:,.0f} | "
              f"{r.get('fewer_than_xN', float('nan')):.2f} |" for r in rows]
    write_json_and_markdown(args.out, "macs", {**machine(), "rows": rows}, "\n".join(lines) + "\n")
    print("\n".join(lines))


def engine_candidates(model: torch.nn.Module, only: str | None) -> list:
    """The one-thread CPU engines ``--backend auto`` chooses from for ``model`` (engines/cpu_choice.py),
    as engine-table candidates; ``only``: comma-separated labels (torch-fp32, onnx-fp32, …) to keep."""
    from livestyle.benchmarks.engine_table import Candidate
    from livestyle.engines.cpu_choice import build_candidate, cpu_candidates

    def build(candidate):
        return lambda net, device: build_candidate(net, candidate)

    keep = set(only.split(",")) if only else None
    return [Candidate(c.label, c.precision, build(c)) for c in cpu_candidates(model, cores=2)
            if c.threads == 1 and (keep is None or c.label.removesuffix("-t1") in keep)]


def time_one(name: str, label: str, h: int, w: int, iters: int) -> dict:
    """In this process: one h×w frame through ``name`` on the engine ``label``, timed by the engine
    table (``livestyle bench engines``' code: one warm-up, then ``iters`` calls; peak resident memory)."""
    from livestyle.benchmarks.engine_table import benchmark_engines

    torch.set_num_threads(1)
    catalog = Catalog(ROOT / "weights")
    model = catalog.load(catalog.get(name, "superres"))
    candidates = engine_candidates(model, label.removesuffix("-t1"))
    if not candidates:
        return {"model": name, "engine": label, "skipped": "not a candidate on this CPU"}
    result = benchmark_engines(model, sizes=[(h, w)], device="cpu", candidates=candidates, warmup=1, iters=iters,
                               interleave=False)
    if not result["rows"]:
        return {"model": name, "engine": label, "skipped": result["skipped"][0]["reason"]}
    row = result["rows"][0]
    return {"model": name, "engine": row["engine"], "candidate": label, "h": h, "w": w, "ms_median": row["ms_median"],
            "ms_p90": row["ms_p90"], "peak_mib": row["peak_mb"], "load_average": os.getloadavg()}


def frame_time(args) -> None:
    cases = [(name, *(int(v) for v in frame.lower().split("x")))
             for name, frame in (case.split(":") for case in args.cases.split(","))]
    before = machine()
    catalog = Catalog(ROOT / "weights")
    labels = [c.label for c in engine_candidates(catalog.load(catalog.get(cases[0][0], "superres")), args.engines)]
    rows = []
    for label in labels:
        for name, h, w in cases:  # the paper's net and the fast one in turn, so that both see the same load
            done = subprocess.run([sys.executable, __file__, "time-one", name, label, f"{h}x{w}", str(args.iters)],
                                  capture_output=True, text=True, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(rows[-1], flush=True)
    loads = [r["load_average"][0] for r in rows if "load_average" in r]
    lines = ["# One frame on the CPU, one thread, every engine `--backend auto` chooses from", "",
             f"{before['cpu']}; torch {torch.__version__}; load average {min(loads, default=0):.2f}–"
             f"{max(loads, default=0):.2f} over the runs (other jobs held the other core and more); model only, "
             f"median of {args.iters} calls after one warm-up, one process per model and engine (the engine table of "
             "`livestyle bench engines`); peak memory: the process's peak resident set.", "",
             "| model | input → output | engine | s per frame | p90 s | peak memory (GiB) |", "|---|---|---|---|---|---|"]
    scale = {name: catalog.get(name, "superres").arch["scale"] for name, _, _ in cases}
    for r in rows:
        if "skipped" in r:
            lines.append(f"| {r['model']} | – | {r['engine']} | skipped: {r['skipped']} | – | – |")
            continue
        s = scale[r["model"]]
        lines.append(f"| {r['model']} | {r['w']}×{r['h']} → {r['w'] * s}×{r['h'] * s} | {r['engine']} | "
                     f"{r['ms_median'] / 1000:.3f} | {r['ms_p90'] / 1000:.3f} | {r['peak_mib'] / 1024:.2f} |")
    data = {**before, "load_average_after": os.getloadavg(), "threads": 1, "iters": args.iters, "rows": rows}
    write_json_and_markdown(args.out, args.name, data, "\n".join(lines) + "\n")
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
    timing.add_argument("--cases", default=CASES, help="NAME:HxW of the input, comma-separated")
    timing.add_argument("--engines", help="engine labels to keep, comma-separated (default: every candidate)")
    timing.add_argument("--iters", type=int, default=3)
    timing.add_argument("--name", default="frame-time", help="report file stem")
    for sub in (macs, timing):
        sub.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()
    count(args) if args.command == "macs" else frame_time(args)


if __name__ == "__main__":
    main()
