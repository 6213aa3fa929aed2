"""GPU job: engine checks and latency table for one device lease (writes everything under $OUT).

    PYTHONPATH=. python3 bench/gpu/engines.py          # on the GPU machine, from the repository root
    python bench/gpu/engines.py --tiny --out /tmp/x     # a CPU dry run with tiny sizes (tests the script)

Stages, each written to disk as soon as it ends (a timeout keeps what was done):
1. env.json: torch / CUDA / cuDNN / GPU, and which of onnx, onnxruntime, tensorrt are importable.
2. checks.json: torch CUDA engine numerics against FP32 — FP16/BF16 PSNR on a natural-looking frame,
   no NaN/Inf on black, white and 1080p frames, CUDA-graph replay equals eager on new inputs.
3. onnx.json: ONNX export of the full net (FP32 and FP16) on this machine, onnx.checker, ONNX
   Runtime parity where onnxruntime is installed.
4. engines-<gpu>.json/.md (beside env.json; commit them to bench/results/): style net (paper width
   32, random weights) at 1080×1920 and 1024², then engines-<gpu>-sr4.json/.md: SR ×4 at 270×480
   input (→ 1080×1920), then the style net at 512² and 256² — every engine available here and the
   baselines baseline:eager-fp32 and baseline:torch.compile-fp16 (one compile per shape), in the
   same run. Rows are written after each size, largest first, so a timeout costs the small sizes.
Nothing here needs the repository's virtual environment: torch and the checkout (PYTHONPATH=.) are
enough (onnx/onnxruntime/tensorrt are used when present). bench/gpu/session.sh runs it.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch

from livestyle.benchmarks.engine_table import benchmark_engines, benchmark_markdown, write_benchmark
from livestyle.benchmarks.machine import device_slug
from livestyle.engines.device import device_label
from livestyle.models.superres import sr_net
from livestyle.models.transform import transform_net

STYLE_SIZES = [(1080, 1920), (1024, 1024), (512, 512), (256, 256)]  # the targets that matter most first
SR_SIZES = [(270, 480)]


def write_json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1, default=str) + "\n")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def environment() -> dict:
    info = {"torch": torch.__version__, "cuda": torch.version.cuda, "cuda_available": torch.cuda.is_available(),
            "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
            "python": sys.version.split()[0]}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
        info["capability"] = torch.cuda.get_device_capability()
    for module in ("onnx", "onnxscript", "onnxruntime", "tensorrt", "triton"):
        found = importlib.util.find_spec(module) is not None
        version = None
        if found:
            try:
                version = getattr(__import__(module), "__version__", "?")
            except Exception as exc:  # a broken install is worth recording, not fatal
                version = f"import failed: {exc}"
        info[module] = version
    if info.get("onnxruntime") and not str(info["onnxruntime"]).startswith("import failed"):
        import onnxruntime
        info["onnxruntime_providers"] = onnxruntime.get_available_providers()
    return info


def natural_image(h: int, w: int, device) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    base = torch.stack([xx, yy, 0.5 + 0.4 * torch.sin(6 * xx + 3 * yy)])
    noise = torch.rand(3, h, w, generator=torch.Generator().manual_seed(1)) * 0.1
    return (0.9 * base + noise).clamp(0, 1).unsqueeze(0).to(device)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = torch.mean((a.float() - b.float()) ** 2).item()
    return float(10 * torch.log10(torch.tensor(1.0 / max(mse, 1e-20))))


def numeric_checks(device: torch.device, width: int, sizes: dict) -> dict:
    """FP16/BF16 vs FP32 PSNR, finite outputs on hard frames, graph replay == eager."""
    from livestyle.engines.torch_engine import TorchEngine

    torch.manual_seed(0)
    model = transform_net(width=width).eval()
    h, w = sizes["natural"]
    x = natural_image(h, w, device)
    reference = TorchEngine(model, device=device, cuda_graphs=False)(x)
    results = {"psnr_vs_fp32": {}, "finite": {}, "graph_vs_eager_max_abs": None}
    for precision in ("fp16", "bf16"):
        for options in ({}, {"rewrites": True}, {"channels_last": True}):
            engine = TorchEngine(model, device=device, precision=precision, **options)
            results["psnr_vs_fp32"][engine.name] = round(psnr(engine(x), reference), 2)
    big_h, big_w = sizes["large"]
    frames = {"black": torch.zeros(1, 3, 64, 64), "white": torch.ones(1, 3, 64, 64),
              "grey": torch.full((1, 3, 64, 64), 0.5), f"noise-{big_h}x{big_w}": torch.rand(1, 3, big_h, big_w)}
    for options in ({}, {"rewrites": True}):
        engine = TorchEngine(model, device=device, precision="fp16", **options)
        for label, frame in frames.items():
            out = engine(frame.to(device))
            results["finite"][f"{engine.name}/{label}"] = bool(torch.isfinite(out).all())
    graphs = TorchEngine(model, device=device, precision="fp16", cuda_graphs=True)
    eager = TorchEngine(model, device=device, precision="fp16", cuda_graphs=False)
    worst = 0.0
    for seed in range(3):
        y = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(seed)).to(device)
        worst = max(worst, (graphs(y) - eager(y)).abs().max().item())
    results["graph_vs_eager_max_abs"] = worst
    return results


def onnx_checks(device: torch.device, width: int, out_dir: Path) -> dict:
    """Export the net (FP32 and FP16), check it, and compare with torch where onnxruntime exists."""
    from livestyle.engines.export.onnx import export_onnx

    torch.manual_seed(0)
    model = transform_net(width=width).eval()
    results = {}
    for label in ("fp32", "fp16"):
        begin = time.perf_counter()
        path = out_dir / f"style-w{width}-{label}.onnx"
        try:
            export_onnx(model, path, precision=label)
        except Exception as exc:
            results[label] = {"error": f"{type(exc).__name__}: {exc}"}
            continue
        entry = {"export_s": round(time.perf_counter() - begin, 2), "bytes": path.stat().st_size}
        if importlib.util.find_spec("onnxruntime"):
            import numpy as np
            import onnxruntime

            providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider")
                         if p in onnxruntime.get_available_providers()]
            session = onnxruntime.InferenceSession(str(path), providers=providers)
            entry["provider"] = session.get_providers()[0]
            for h, w in [(37, 29), (64, 64), (135, 240)]:
                x = torch.rand(1, 3, h, w)
                with torch.inference_mode():
                    expected = model(x).numpy()
                actual = session.run(["output"], {"input": x.numpy()})[0]
                entry[f"max_abs_{h}x{w}"] = float(np.abs(actual - expected).max())
        results[label] = entry
        path.unlink(missing_ok=True)  # large; only the numbers come back
    return results


MERGED: dict[str, dict] = {}  # stem → rows so far (a table's sizes may come in several stages)


def run_bench(model, sizes, device, out_dir: Path, stem: str, title: str, args) -> None:
    """Benchmark size by size, rewriting the result files after each size."""
    merged = MERGED.get(stem)
    for size in sizes:
        log(f"{stem}: {size[0]}x{size[1]}")
        result = benchmark_engines(model, sizes=[size], device=device, warmup=args.warmup, iters=args.iters,
                                   extra=args.extra, cache_dir=args.cache_dir,
                                   only=args.only, progress=lambda m: log("  " + m))
        if merged is None:
            merged = result
        else:
            merged["rows"] += result["rows"]
            merged["skipped"] += [s for s in result["skipped"] if s not in merged["skipped"]]
        MERGED[stem] = merged
        write_benchmark(merged, out_dir, stem=stem, title=title)
    log(benchmark_markdown(merged, title=title))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=os.environ.get("OUT", "out"), help="output folder (default $OUT)")
    parser.add_argument("--tiny", action="store_true", help="CPU dry run: tiny nets and sizes")
    parser.add_argument("--iters", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--extra", action="store_true", help="also the slow-to-prepare engine variants")
    parser.add_argument("--only", nargs="*", default=None, help="engine label prefixes to keep (baselines always)")
    parser.add_argument("--stages", nargs="*", default=["env", "checks", "onnx", "style", "sr", "style-small"],
                        help="style: the two large sizes; style-small: the two small ones")
    args = parser.parse_args()
    out = Path(args.out)
    args.cache_dir = Path(tempfile.gettempdir()) / "livestyle-gpu-cache"  # exports stay off $OUT
    device = torch.device("cuda" if torch.cuda.is_available() and not args.tiny else "cpu")
    width, sr_width = (4, 4) if args.tiny else (32, 64)
    style_sizes = [(32, 32), (24, 40), (16, 16), (8, 24)] if args.tiny else STYLE_SIZES
    sr_sizes = [(12, 20)] if args.tiny else SR_SIZES
    check_sizes = {"natural": (48, 40), "large": (64, 96)} if args.tiny else {"natural": (256, 320), "large": (1080, 1920)}
    results_dir = out  # at most two folders below $OUT come back from the device machine
    slug = device_slug(device_label(device))
    if args.tiny:
        args.iters, args.warmup = min(args.iters, 3), 1

    stages = {
        "env": lambda: write_json(out / "env.json", environment()),
        "checks": lambda: write_json(out / "checks.json", numeric_checks(device, width, check_sizes))
        if device.type == "cuda" else log("checks: CUDA only, skipped"),
        "onnx": lambda: write_json(out / "onnx.json", onnx_checks(device, width, out)),
        "style": lambda: run_bench(seeded(transform_net, width=width), style_sizes[:2], device, results_dir,
                                   f"engines-{slug}", "Style transform net (width %d), batch 1" % width, args),
        "style-small": lambda: run_bench(seeded(transform_net, width=width), style_sizes[2:], device,
                                         results_dir, f"engines-{slug}", "Style transform net (width %d), batch 1"
                                         % width, args),
        "sr": lambda: run_bench(seeded(sr_net, scale=4, width=sr_width), sr_sizes, device, results_dir,
                                f"engines-{slug}-sr4", "SR ×4 (input size shown), batch 1", args),
    }
    for name in args.stages:
        log(f"stage {name}")
        try:
            stages[name]()
        except Exception:  # keep going: later stages are independent, and the trace is kept
            trace = traceback.format_exc()
            log(trace)
            (out / f"error-{name}.txt").write_text(trace)
    log("done")


def seeded(factory, **kwargs):
    torch.manual_seed(0)
    return factory(**kwargs).eval()


if __name__ == "__main__":
    main()
