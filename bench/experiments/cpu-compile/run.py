"""`--compile` on the CPU: start-up cost without and with the persistent compile cache, and speed.

    .venv/bin/python bench/experiments/cpu-compile/run.py [--rounds 5] [--out DIR]

For each case (a catalog model, a precision, an input size), two new processes share one fresh
livestyle cache folder (nothing in torch's own temporary cache is used):
1. "cold": build the compiled engine and run its first frame (the compile), then time it against the
   eager torch engine of the same precision and the engine `auto` picks, interleaved;
2. "cached": build and run the first frame again, now from the cache.
Writes ``cpu-compile.json`` and ``.md`` under ``--out`` (default: results/ beside this script).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

HERE = Path(__file__).resolve().parent
# (model, precision, input height, input width): the small style model where cam and video run it,
# and SR ×4 to 640×480.
CASES = [("kandinsky_small", "bf16", 480, 640), ("kandinsky_small", "fp32", 480, 640), ("x4", "fp32", 120, 160)]


def worker(name: str, precision: str, h: int, w: int, rounds: int, timing: bool) -> dict:
    """In a new process: compile, first frame, and (``timing``) the interleaved comparison."""
    import torch

    from livestyle.zoo.catalog import Catalog
    from livestyle.engines.torch_engine import TorchEngine
    from livestyle.engines.factory import create_engine
    from livestyle.benchmarks.timing import interleaved_times, p90

    catalog = Catalog()
    model = catalog.load(catalog.get(name))
    x = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(0))
    begin = time.perf_counter()
    compiled = TorchEngine(model, device="cpu", precision=precision, compile=True)
    first = compiled(x)
    result = {"first_frame_s": time.perf_counter() - begin, "engine": compiled.name}
    if not timing:
        return result
    eager = TorchEngine(model, device="cpu", precision=precision)
    auto = create_engine(model, device="cpu")
    result["max_abs_diff_vs_eager"] = (first - eager(x)).abs().max().item()
    engines = {compiled.name: compiled, eager.name: eager}
    engines.setdefault(auto.name, auto)
    times = interleaved_times({k: partial(e, x) for k, e in engines.items()}, rounds=rounds, iters=10, warmup=2)
    result["auto"] = auto.name
    result["ms"] = {k: {"median": statistics.median(v), "p90": p90(v)} for k, v in times.items()}
    return result


def run_worker(case: tuple, cache: Path, rounds: int, timing: bool) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "TORCHINDUCTOR_CACHE_DIR"}
    env["LIVESTYLE_CACHE_DIR"] = str(cache)
    args = [sys.executable, __file__, "--worker", json.dumps([*case, rounds, timing])]
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise SystemExit(f"worker {case} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def markdown(rows: list[dict], device: str) -> str:
    lines = [f"# `--compile` on the CPU ({device})", "",
             "Model only, batch 1, median of interleaved rounds (every engine sees the same load). "
             "First frame = engine built + first call, in a new process: *cold* with an empty cache "
             "folder, *cached* with the folder the cold run filled. Made by `bench/experiments/cpu-compile/run.py`.", "",
             "| model | precision | input | first frame cold | first frame cached | compiled ms | eager ms | "
             "`auto` engine, ms | max abs diff vs eager |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ms = r["ms"]
        compiled = ms[r["engine"]]["median"]
        eager = ms[r["engine"].removesuffix("-compile")]["median"]
        auto = ms[r["auto"]]["median"]
        lines.append(f"| {r['model']} | {r['precision']} | {r['h']}×{r['w']} | {r['cold_s']:.1f} s | "
                     f"{r['cached_s']:.1f} s | {compiled:.1f} | {eager:.1f} | {r['auto']}: {auto:.1f} | "
                     f"{r['max_abs_diff_vs_eager']:.2g} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(HERE / "results"))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(*json.loads(args.worker))))
        return

    from livestyle.files import write_json_and_markdown
    from livestyle.engines.device import cpu_model

    device = f"{cpu_model()} ({os.cpu_count()} cores)"
    rows = []
    for case in CASES:
        with tempfile.TemporaryDirectory(prefix="livestyle-compile-") as cache:
            cold = run_worker(case, Path(cache), args.rounds, timing=True)
            cached = run_worker(case, Path(cache), args.rounds, timing=False)
        name, precision, h, w = case
        rows.append({"model": name, "precision": precision, "h": h, "w": w, "cold_s": cold.pop("first_frame_s"),
                     "cached_s": cached["first_frame_s"], **cold})
        print(json.dumps(rows[-1]), flush=True)
    report = markdown(rows, device)
    write_json_and_markdown(args.out, "cpu-compile", {"device": device, "rows": rows}, report)
    print(report)


if __name__ == "__main__":
    main()
