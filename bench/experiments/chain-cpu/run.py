"""CPU benchmark of style + SR chains: stylise at 1/4 size then SR ×4, vs stylising at full size.

    .venv/bin/python bench/experiments/chain-cpu/run.py --size 720x1280 --widths 32 16 8 --repeats 5

Both routes give an output of --size. Random weights (speed does not depend on them): the paper's
style net (TransformNet, width 32, 5 blocks) and its real-time variants, and the paper's SR ×4
(SRNet, 64 channels, 4 blocks). Backends: torch eager FP32 and ONNX Runtime. Writes --out (default:
results/chain-cpu.md beside this script). The machine may be shared: the load average is recorded.
"""
from __future__ import annotations

import argparse
import copy
import os
import platform
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import torch

from livestyle.engines.chain import ChainEngine
from livestyle.engines.factory import create_engine
from livestyle.models.superres import sr_net
from livestyle.models.transform import transform_net

HERE = Path(__file__).resolve().parent


def median_ms(engine, x: torch.Tensor, repeats: int) -> float:
    engine(x)  # warm-up (allocations, onnxruntime's first run)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        engine(x)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def gflop(model: torch.nn.Module, shape: tuple[int, ...]) -> float:
    """Floating-point operations of one forward pass (counted on the meta device: no compute)."""
    from torch.utils.flop_counter import FlopCounterMode

    meta_model = copy.deepcopy(model).to("meta")
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        meta_model(torch.empty(shape, device="meta"))
    return counter.get_total_flops() / 1e9


def cpu_name() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        name = next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except (OSError, subprocess.CalledProcessError, StopIteration):
        name = platform.processor() or "unknown CPU"
    return f"{name}, {os.cpu_count()} cores"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="720x1280", help="output HxW")
    parser.add_argument("--widths", type=int, nargs="+", default=[32, 16, 8])
    parser.add_argument("--backends", nargs="+", default=["torch", "onnx"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default=str(HERE / "results" / "chain-cpu.md"))
    args = parser.parse_args()
    h, w = (int(v) for v in args.size.split("x"))
    torch.manual_seed(0)
    full_input, low_input = torch.rand(1, 3, h, w), torch.rand(1, 3, h // 4, w // 4)
    load_before = os.getloadavg()
    rows = []
    sr_model = sr_net(scale=4).eval()
    sr_gflop = gflop(sr_model, tuple(low_input.shape))
    with tempfile.TemporaryDirectory() as cache:
        for backend in args.backends:
            sr_engine = create_engine(sr_model, backend=backend, device="cpu", cache_dir=cache)
            sr_ms = median_ms(sr_engine, low_input, args.repeats)
            for width in args.widths:
                style = transform_net(width=width).eval()
                full = create_engine(style, backend=backend, device="cpu", cache_dir=cache)
                full_ms = median_ms(full, full_input, args.repeats)
                low = create_engine(style, backend=backend, device="cpu", cache_dir=cache)
                low_ms = median_ms(low, low_input, args.repeats)
                chain_ms = median_ms(ChainEngine(low, sr_engine), low_input, args.repeats)
                flops = (gflop(style, tuple(full_input.shape)), gflop(style, tuple(low_input.shape)) + sr_gflop)
                rows.append((full.name, width, full_ms, low_ms, sr_ms, chain_ms, *flops, os.getloadavg()[0]))
                print(rows[-1], flush=True)
    load_after = os.getloadavg()
    lines = [
        f"# Style + SR ×4 chain vs full-resolution style, {w}×{h} output, CPU",
        "",
        f"Machine: {cpu_name()}, torch {torch.__version__} (threads {torch.get_num_threads()}), "
        f"{platform.python_implementation()} {platform.python_version()}; FP32, batch 1, random weights; "
        f"median of {args.repeats} runs after a warm-up. Shared machine: load average "
        f"{load_before[0]:.1f} before, {load_after[0]:.1f} after (other jobs ran at the same time, so "
        "absolute times are pessimistic; the ratios are the point).",
        "",
        f"Chain = TransformNet at {w // 4}×{h // 4} → SRNet ×4 (64 ch, 4 blocks) → {w}×{h}; "
        f"full = TransformNet at {w}×{h}. Command: `python bench/experiments/chain-cpu/run.py --size {h}x{w} "
        f"--widths {' '.join(map(str, args.widths))} --repeats {args.repeats}`.",
        "",
        "| engine | style width | full-res style (ms) | low-res style (ms) | SR ×4 (ms) | chain (ms) | "
        "chain speed-up | GFLOP full / chain | load avg |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, width, full_ms, low_ms, sr_ms, chain_ms, full_gflop, chain_gflop, load in rows:
        lines.append(f"| {name} | {width} | {full_ms:.0f} | {low_ms:.0f} | {sr_ms:.0f} | {chain_ms:.0f} | "
                     f"{full_ms / chain_ms:.2f}× | {full_gflop:.0f} / {chain_gflop:.0f} | {load:.1f} |")
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
