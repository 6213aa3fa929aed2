"""GPU job: the paper's whole timing table (Table 1) in one device call, no extrapolation.

Runs ``livestyle.benchmarks.paper.run_bench`` (what ``livestyle bench paper`` runs) at 256/512/1024
with 100/300/500 L-BFGS iterations, first with the paper's VGG-16 loss network, then with SqueezeNet
1.1, and writes JSON + Markdown + PNG for each, plus the console log, under $OUT (or --out; default
bench/results/, where the kept bench-*.json/md/png runs are). --budget-s stops before a loss
network's run that would not fit in the call.

Usage (device, no install):  PYTHONPATH=. python3 bench/gpu/paper_table.py     (writes under $OUT)
Check on a CPU:              python bench/gpu/paper_table.py --device cpu --sizes 32 --iters 2,3 --out /tmp/x
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
import traceback
from pathlib import Path

# The device machine has its own Python and no network: say what is missing before any work.
MISSING = [m for m in ("torch", "torchvision", "numpy", "tqdm", "livestyle") if importlib.util.find_spec(m) is None]
if MISSING:
    sys.exit(f"paper_table: missing Python packages: {', '.join(MISSING)}"
             + (" (run from the repository root with PYTHONPATH=.)" if "livestyle" in MISSING else ""))

import torch  # noqa: E402

from livestyle.benchmarks.paper import BenchConfig, run_bench  # noqa: E402
from livestyle.benchmarks.paper_report import report_stem, table_markdown, write_reports  # noqa: E402
from livestyle.engines.factory import create_engine  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="256,512,1024")
    parser.add_argument("--iters", default="100,300,500")
    parser.add_argument("--loss-nets", default="vgg16,squeezenet1_1")
    parser.add_argument("--backends", default="torch", help="comma-separated engine backends")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--ff-runs", type=int, default=100, help="feed-forward runs per size and engine (at most)")
    parser.add_argument("--ff-seconds", type=float, default=10.0, help="feed-forward time budget per size and engine")
    parser.add_argument("--width", type=int, default=32, help="transform net width (the paper's: 32)")
    parser.add_argument("--out", default=os.environ.get("OUT", "bench/results"))
    parser.add_argument("--budget-s", type=float, default=480.0,
                        help="skip a loss network's run if the time spent so far leaves less than a guess of it")
    args = parser.parse_args(argv)

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("paper_table: CUDA is not available; pass --device cpu for a (tiny) check run", file=sys.stderr)
        return 2
    if args.device.startswith("cuda"):
        torch.backends.cudnn.benchmark = True  # fixed shapes per size: let cuDNN pick its fastest kernels
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sizes = tuple(int(s) for s in args.sizes.split(","))
    iterations = tuple(int(n) for n in args.iters.split(","))
    started = time.perf_counter()
    log_lines: list[str] = []

    def log(message: str) -> None:
        line = f"[{time.perf_counter() - started:7.1f} s] {message}"
        print(line, file=sys.stderr, flush=True)
        log_lines.append(line)

    plot = importlib.util.find_spec("matplotlib") is not None
    if not plot:
        log("matplotlib missing: JSON + Markdown only (make the PNG later with "
            "livestyle.benchmarks.paper_report.write_reports)")
    last_duration, failures = 0.0, 0
    for loss_net in args.loss_nets.split(","):
        spent = time.perf_counter() - started
        if last_duration and spent + last_duration > args.budget_s:
            log(f"skipping {loss_net}: {spent:.0f} s spent, the last run took {last_duration:.0f} s, budget {args.budget_s:.0f} s")
            continue
        t0 = time.perf_counter()
        config = BenchConfig(sizes=sizes, iterations=iterations, backends=tuple(args.backends.split(",")),
                             device=args.device, loss_net=loss_net, feedforward_runs=args.ff_runs,
                             feedforward_seconds=args.ff_seconds, width=args.width)
        try:
            factories = None
            if args.device.startswith("cuda"):
                # FP32 and FP16 torch engines timed against the same Gatys run (the paper's net was FP32).
                factories = {f"{b}-{p}": (lambda m, d, b=b, p=p: create_engine(m, backend=b, device=str(d),
                                                                            precision=p))
                             for b in config.backends for p in ("fp32", "fp16")}
            report = run_bench(config, engine_factories=factories, progress=log).to_dict()
            paths = write_reports(report, out, stem=report_stem(report), plot=plot)
        except Exception:  # one device call: keep going with the next loss network, keep the traceback
            log(f"{loss_net} failed:\n{traceback.format_exc()}")
            failures += 1
            continue
        finally:
            last_duration = time.perf_counter() - t0
        print(table_markdown(report), flush=True)
        log(f"{loss_net}: wrote {', '.join(p.name for p in paths)}")
    (out / "paper_table.log").write_text("\n".join(log_lines) + "\n")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
