"""CPU engines for style nets of several widths: ONNX Runtime vs torch, the rewrites, reduced resolution.

The data behind `auto`'s CPU backend rule, at one frame size.

    .venv/bin/python bench/experiments/cpu-engines/run.py --widths 8 16 32 --size 480x640 --repeats 3 \\
        --out bench/experiments/cpu-engines/results/<conditions> --note "<machine conditions>"

Writes into --out (default: results/ beside this script; the kept runs are in its subfolders, one
per machine condition, see findings.md) cpu-engines-cputime.json/.md first: single-thread CPU time
per call (process_time), which other jobs on a shared machine barely change — the fair comparison
of the backends and rewrites. Then the wall-clock tables (2 threads, what a user sees):
cpu-engines-width<W>.json/.md (rows as in livestyle.benchmarks.engine_table, each row the repeat
with the lowest median) and cpu-engines-summary.md. Random weights (speed does not depend on them).
The load average is recorded with every run.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import torch

from livestyle.benchmarks.engine_table import (BASELINE_EAGER, Candidate, benchmark_engines, benchmark_markdown,
                                               eager_baseline, write_benchmark)
from livestyle.engines.device import device_label
from livestyle.models.transform import transform_net

HERE = Path(__file__).resolve().parent


def candidates(cache_dir: Path, infer_scales: list[float], spinning: bool) -> list[Candidate]:
    from livestyle.engines.resolution import ReducedResolutionEngine
    from livestyle.engines.torch_engine import TorchEngine
    from livestyle.engines.onnx_engine import OnnxRuntimeEngine

    def ort(**options):
        return lambda model, dev: OnnxRuntimeEngine(model, device=dev, cache_dir=cache_dir, **options)

    found = [Candidate(BASELINE_EAGER, "fp32", eager_baseline),
             Candidate("torch-cpu-fp32", "fp32", lambda m, d: TorchEngine(m, device=d)),
             Candidate("torch-cpu-fp32-channels_last", "fp32", lambda m, d: TorchEngine(m, device=d, channels_last=True)),
             Candidate("onnxruntime-cpu-fp32", "fp32", ort()),
             Candidate("onnxruntime-cpu-fp32-plain", "fp32", ort(rewrite=False))]
    if spinning:
        def spinning_ort(model, dev):
            engine = OnnxRuntimeEngine(model, device=dev, cache_dir=cache_dir, spinning=True)
            engine.name += "-spinning"
            return engine
        found.append(Candidate("onnxruntime-cpu-fp32-spinning", "fp32", spinning_ort))
    for scale in infer_scales:
        for upsample in ("bicubic", "guided"):
            found.append(Candidate(f"onnxruntime-cpu-fp32@{scale:g}x-{upsample}", "fp32",
                                   lambda m, d, s=scale, u=upsample: ReducedResolutionEngine(
                                       OnnxRuntimeEngine(m, device=d, cache_dir=cache_dir), infer_scale=s, upsample=u)))
    return found


def cpu_time_ablation(width: int, h: int, w: int, cache_dir: Path, infer_scales: list[float] = (),
                      reps: int = 3, calls: int = 3) -> list[dict]:
    """Single-thread CPU time (process_time) per call: robust to other jobs on the machine, which
    lengthen wall time but not the CPU time a call consumes. Plain torch, the rewrites, ONNX Runtime."""
    from livestyle.engines.resolution import ReducedResolutionEngine
    from livestyle.engines.onnx_engine import OnnxRuntimeEngine
    from livestyle.models.rewrites import rewrite_for_inference

    torch.manual_seed(0)
    model = transform_net(width=width).eval()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    variants = {"torch plain (= baseline:eager-fp32)": model,
                "torch sub-pixel rewrite (engine default on CPU)": rewrite_for_inference(model, fused_norm=False),
                "torch fused instance norm only": rewrite_for_inference(model, subpixel=False),
                "torch sub-pixel + fused norm": rewrite_for_inference(model),
                "onnxruntime plain": OnnxRuntimeEngine(model, device="cpu", cache_dir=cache_dir, rewrite=False,
                                                       threads=1),
                "onnxruntime sub-pixel rewrite (engine default on CPU)": OnnxRuntimeEngine(model, device="cpu", cache_dir=cache_dir,
                                                                    rewrite=True, threads=1)}
    for scale in infer_scales:
        for upsample in ("bicubic", "guided"):
            inner = OnnxRuntimeEngine(model, device="cpu", cache_dir=cache_dir, rewrite=True, threads=1)
            variants[f"onnxruntime at {scale:g}× size + {upsample} upsample"] = ReducedResolutionEngine(
                inner, infer_scale=scale, upsample=upsample)
    x = torch.rand(1, 3, h, w)
    best = {name: float("inf") for name in variants}
    with torch.inference_mode():
        for _ in range(reps):  # round robin, best of all
            for name, run in variants.items():
                run(x)
                for _ in range(calls):
                    begin = time.process_time()
                    run(x)
                    best[name] = min(best[name], (time.process_time() - begin) * 1000)
    torch.set_num_threads(threads)
    return [{"width": width, "variant": name, "h": h, "w": w, "cpu_ms_best": round(ms, 1)} for name, ms in best.items()]


def best_of(results: list[dict]) -> dict:
    """Merge repeats: for each (engine, size) keep the row with the lowest median."""
    best: dict[tuple, dict] = {}
    for result in results:
        for row in result["rows"]:
            key = (row["engine"], row["h"], row["w"])
            if key not in best or row["ms_median"] < best[key]["ms_median"]:
                best[key] = row
    merged = dict(results[0])
    merged["rows"] = list(best.values())
    return merged


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--widths", type=int, nargs="+", default=[8, 16, 32])
    parser.add_argument("--size", default="480x640", help="HxW of the frames")
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=2, help="whole runs; the best median of each is kept")
    parser.add_argument("--infer-scales", type=float, nargs="*", default=[0.5])
    parser.add_argument("--spinning", action="store_true", help="also time ONNX Runtime with spinning threads")
    parser.add_argument("--out", default=str(HERE / "results"))
    parser.add_argument("--note", default="other helpers' jobs shared this 2-core CPU during the run; "
                                          "each row is the best median of the repeats")
    parser.add_argument("--ablation-only", action="store_true", help="only the single-thread CPU-time table")
    parser.add_argument("--wall-only", action="store_true", help="only the wall-clock tables")
    parser.add_argument("--merge", action="store_true", help="keep the best of this run and the tables already in --out")
    args = parser.parse_args()
    h, w = (int(v) for v in args.size.lower().split("x"))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if not args.wall_only:
        write_cpu_time_tables(args, h, w, out)
    if not args.ablation_only:
        write_wall_clock_tables(args, h, w, out)


def write_cpu_time_tables(args, h: int, w: int, out: Path) -> None:
    with tempfile.TemporaryDirectory() as cache:
        rows = [row for width in args.widths for row in cpu_time_ablation(width, h, w, Path(cache), args.infer_scales)]
    (out / "cpu-engines-cputime.json").write_text(json.dumps({"device": device_label(torch.device("cpu")),
                                                              "threads": 1, "load": os.getloadavg(), "rows": rows},
                                                             indent=1) + "\n")
    table = ["# CPU time per call, one thread (process_time, best of 9)", "",
             f"{device_label(torch.device('cpu'))}; frame {h}×{w}; load average {os.getloadavg()[0]:.1f} at the end. "
             "CPU time, unlike wall time, barely changes when other jobs share the machine.", "",
             "| width | variant | CPU ms |", "|---|---|---|"]
    table += [f"| {r['width']} | {r['variant']} | {r['cpu_ms_best']} |" for r in rows]
    (out / "cpu-engines-cputime.md").write_text("\n".join(table) + "\n")
    print("\n".join(table), flush=True)


def write_wall_clock_tables(args, h: int, w: int, out: Path) -> None:
    summary = ["# CPU engines: ONNX Runtime vs torch", "", f"Frame {h}×{w}, batch 1, FP32, random weights. {args.note}.", ""]
    with tempfile.TemporaryDirectory() as cache:
        for width in args.widths:
            torch.manual_seed(0)
            model = transform_net(width=width).eval()
            runs = []
            for repeat in range(args.repeats):
                load_before = os.getloadavg()
                result = benchmark_engines(model, sizes=[(h, w)], device="cpu",
                                           candidates=candidates(Path(cache), args.infer_scales, args.spinning),
                                           warmup=2, iters=args.iters, interleave=False, progress=lambda m: print(m, flush=True))
                result["meta"].update({"width": width, "repeat": repeat, "load_before": load_before,
                                       "load_after": os.getloadavg(), "threads": torch.get_num_threads(),
                                       "note": args.note})
                runs.append(result)
            previous = out / f"cpu-engines-width{width}.json"
            if args.merge and previous.is_file():  # best of this run and the one already recorded
                earlier = read_table(previous)
                runs.append(earlier)
                args.repeats_total = earlier["meta"].get("repeats", 1)
            merged = best_of(runs)
            merged["meta"]["repeats"] = args.repeats + (getattr(args, "repeats_total", 0) if args.merge else 0)
            merged["meta"]["loads"] = [load for r in runs for load in
                                       (r["meta"].get("loads") or [(r["meta"]["load_before"], r["meta"]["load_after"])])]
            write_benchmark(merged, out, stem=f"cpu-engines-width{width}", title=f"CPU engines, TransformNet width {width}")
            print(f"width {width} done at {time.strftime('%H:%M:%S')}", flush=True)
    tables = sorted(out.glob("cpu-engines-width*.json"), key=lambda p: int(p.stem.rsplit("width", 1)[1]))
    for path in tables:  # every width recorded in --out, this run's and earlier ones
        result = read_table(path)
        summary += [f"## width {result['meta']['width']} ({result['meta'].get('repeats', 1)} runs, best median kept)", "",
                    benchmark_markdown(result, title="").split("\n", 2)[2], ""]
    (out / "cpu-engines-summary.md").write_text("\n".join(summary))


def read_table(path: Path) -> dict:
    """A width table written before; rows of runs older than the "precision" key say "dtype"."""
    result = json.loads(path.read_text())
    for row in result["rows"]:
        row.setdefault("precision", row.pop("dtype", "fp32"))
    return result


if __name__ == "__main__":
    main()
