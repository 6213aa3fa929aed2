"""Engine benchmark: every available livestyle engine and the plain-PyTorch baselines, same run.

Result layout (also written as JSON)::

    {"device": str, "rows": [{"engine": str, "h": int, "w": int, "precision": str,
                              "ms_median": float, "ms_p90": float,
                              "peak_mb": float | None, "peak_growth_mb": float | None}, ...],
     "skipped": [{"engine": str, "reason": str}], "meta": {...}}

``h``, ``w`` are the *input* size (an SR net's output is scale× larger). ``peak_mb``: the process's
peak resident memory during the engine's warm-up calls at that size (CPU; on CUDA torch's peak
allocation), ``peak_growth_mb`` that peak less the amount before them: engines timed earlier keep
what they allocated, so for one engine alone run one per process (bench/README.md). Baselines are named
``baseline:eager-fp32`` (model.eval() under inference_mode) and ``baseline:torch.compile-fp16``
(model.half(), torch.compile with a static shape; CUDA only). Engines and baselines are timed
interleaved (one call of each in turn), so that a change in machine load hits all of them alike.
"""
from __future__ import annotations

import copy
import json
import os
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from livestyle.benchmarks.machine import device_slug
from livestyle.benchmarks.memory import PeakMemory
from livestyle.benchmarks.timing import p90, timer
from livestyle.engines.device import cpu_caps, cpu_has_native_bf16, device_label, resolve_device
from livestyle.errors import LivestyleError
from livestyle.files import write_json_and_markdown

STYLE_SIZES = ((256, 256), (512, 512), (1024, 1024), (1080, 1920))
BASELINE_EAGER = "baseline:eager-fp32"
BASELINE_COMPILE = "baseline:torch.compile-fp16"


@dataclass(frozen=True)
class Candidate:
    """One thing to time: ``build(model, device)`` → a callable on float32 (N, 3, H, W) batches."""

    label: str
    precision: str
    build: Callable[[nn.Module, torch.device], Callable[[torch.Tensor], torch.Tensor]]


def eager_baseline(model: nn.Module, device: torch.device):
    net = copy.deepcopy(model).eval().to(device)

    @torch.inference_mode()
    def run(x: torch.Tensor) -> torch.Tensor:
        return net(x)

    run.name = BASELINE_EAGER
    return run


def compile_baseline(model: nn.Module, device: torch.device):
    # What a user gets from plain PyTorch at its best: FP16 weights, one static shape per compile.
    net = torch.compile(copy.deepcopy(model).eval().to(device).half(), dynamic=False)

    @torch.inference_mode()
    def run(x: torch.Tensor) -> torch.Tensor:
        return net(x.half())

    run.name = BASELINE_COMPILE
    return run


def default_candidates(device: torch.device, *, cache_dir: str | os.PathLike | None = None,
                       extra: bool = False) -> list[Candidate]:
    """The baselines and the livestyle engines worth timing on ``device``. ``extra``: also the
    variants that are slow to prepare (torch.compile engines: one compile per size, cached in
    ``cache_dir``) or rarely best."""
    from livestyle.engines.torch_engine import TorchEngine

    def torch_engine(**options):
        return lambda model, dev: TorchEngine(model, device=dev, **options)

    def onnx_engine(**options):
        def build(model, dev):
            from livestyle.engines.onnx_engine import OnnxRuntimeEngine

            return OnnxRuntimeEngine(model, device=dev, cache_dir=cache_dir, **options)
        return build

    def tensorrt_engine(**options):
        def build(model, dev):
            from livestyle.engines.tensorrt_engine import TensorRTEngine

            return TensorRTEngine(model, device=dev, cache_dir=cache_dir, **options)
        return build

    found = [Candidate(BASELINE_EAGER, "fp32", eager_baseline)]
    if device.type == "cpu":
        found += cpu_engine_candidates(cache_dir=cache_dir)
        bf16 = cpu_has_native_bf16()
        if extra:
            found.append(Candidate("torch-cpu-fp32-compile", "fp32", torch_engine(compile=True, cache_dir=cache_dir)))
            if bf16:
                found.append(Candidate("torch-cpu-bf16-compile", "bf16",
                                       torch_engine(precision="bf16", compile=True, cache_dir=cache_dir)))
        return found
    found += [Candidate(BASELINE_COMPILE, "fp16", compile_baseline),
              Candidate("torch-cuda-fp16-graphs", "fp16", torch_engine(precision="fp16", cuda_graphs=True)),
              Candidate("torch-cuda-fp16-rewrites-graphs", "fp16", torch_engine(precision="fp16", rewrites=True, cuda_graphs=True)),
              Candidate("torch-cuda-fp32-graphs", "fp32", torch_engine(cuda_graphs=True)),
              Candidate("tensorrt-fp16", "fp16", tensorrt_engine(precision="fp16")),
              Candidate("onnxruntime-cuda-fp16", "fp16", onnx_engine(precision="fp16"))]
    if extra:
        found += [Candidate("torch-cuda-fp16-channels_last-graphs", "fp16",
                            torch_engine(precision="fp16", channels_last=True, cuda_graphs=True)),
                  Candidate("torch-cuda-fp16-compile", "fp16", torch_engine(precision="fp16", compile=True, cache_dir=cache_dir)),
                  Candidate("torch-cuda-fp16-rewrites-compile", "fp16",
                            torch_engine(precision="fp16", rewrites=True, compile=True, cache_dir=cache_dir)),
                  Candidate("tensorrt-fp32", "fp32", tensorrt_engine(precision="fp32"))]
    return found


def cpu_engine_candidates(*, cache_dir: str | os.PathLike | None = None) -> list[Candidate]:
    """Every CPU engine ``auto`` chooses from (``livestyle.engines.cpu_choice``): torch, ONNX Runtime and
    OpenVINO, FP32 and BF16 where the CPU has it, at each thread count; the ones not installed are
    reported as skipped when built."""
    from livestyle.engines.cpu_choice import CpuCandidate, build_candidate, thread_counts

    def build_with(candidate):
        return lambda model, dev: build_candidate(model, candidate, cache_dir=cache_dir)

    backends = (("torch", ("fp32", "bf16")), ("onnxruntime", ("fp32",)), ("openvino", ("fp32", "bf16")))
    found = []
    for backend, precisions in backends:
        for precision in precisions:
            if precision == "bf16" and not cpu_has_native_bf16():
                continue
            for threads in thread_counts():
                candidate = CpuCandidate("onnx" if backend == "onnxruntime" else backend, precision, threads)
                found.append(Candidate(f"{backend}-cpu-{precision}-t{threads}", precision, build_with(candidate)))
    return found


def benchmark_engines(model: nn.Module | None = None, *, sizes: Sequence[tuple[int, int]] = STYLE_SIZES,
                      device: str | torch.device | None = None, candidates: Sequence[Candidate] | None = None,
                      only: Sequence[str] | None = None, batch: int = 1, warmup: int = 3, iters: int = 20,
                      cache_dir: str | os.PathLike | None = None, extra: bool = False, interleave: bool = True,
                      progress: Callable[[str], None] | None = None) -> dict:
    """Time every available engine and the plain-PyTorch baselines at each (H, W) input size.

    ``model``: default the paper's TransformNet (width 32, random weights, seed 0). ``only``: keep
    the candidates whose label starts with one of these strings (baselines are always kept).
    Engines that cannot be built here (not installed, no GPU) go to ``skipped`` with the reason.
    ``interleave``: time one call of each candidate in turn (fair under changing load); False: all
    iterations of one candidate, then the next (fairer on a small shared CPU, where one engine's
    worker threads still spinning after its call would slow the next engine down).
    Returns the result dict described in the module docstring (median and p90 over ``iters``).
    """
    from livestyle.models.transform import transform_net

    dev = device if isinstance(device, torch.device) else resolve_device(device)
    if model is None:
        torch.manual_seed(0)
        model = transform_net()
    model = model.eval()
    found = list(candidates) if candidates is not None else default_candidates(dev, cache_dir=cache_dir, extra=extra)
    if only:
        found = [c for c in found if c.label.startswith("baseline:") or c.label.startswith(tuple(only))]
    say = progress or (lambda message: None)
    timed = timer(dev)
    rows, skipped, built = [], [], []
    for candidate in found:
        try:
            built.append((candidate, candidate.build(model, dev)))
        except (LivestyleError, ImportError, RuntimeError) as exc:
            skipped.append({"engine": candidate.label, "reason": f"{type(exc).__name__}: {exc}".splitlines()[0]})
            say(f"skip {candidate.label}: {skipped[-1]['reason']}")

    for h, w in sizes:
        x = torch.rand(batch, 3, h, w, generator=torch.Generator().manual_seed(0)).to(dev)
        runnable, failed = [], set()

        def skip(candidate, exc) -> None:  # one engine failing at one size costs only its own row
            reason = f"{h}x{w}: {type(exc).__name__}: {exc}".splitlines()[0]
            skipped.append({"engine": candidate.label, "reason": reason})
            failed.add(candidate.label)
            say(f"skip {candidate.label} at {h}x{w}: {reason}")

        peaks: dict[str, PeakMemory] = {}
        for candidate, run in built:
            try:
                with PeakMemory(dev) as peaks[candidate.label]:
                    for _ in range(warmup):
                        run(x)
                    if dev.type == "cuda":
                        torch.cuda.synchronize(dev)  # inside the try: CUDA reports errors at the next sync
                runnable.append((candidate, run))
            except (LivestyleError, RuntimeError) as exc:  # e.g. out of memory at this size
                skip(candidate, exc)
        times: dict[str, list[float]] = {c.label: [] for c, _ in runnable}
        order = [c for _ in range(iters) for c in runnable] if interleave else \
            [c for c in runnable for _ in range(iters)]
        for candidate, run in order:
            if candidate.label in failed:
                continue
            try:
                times[candidate.label].append(timed(lambda: run(x)))
            except (LivestyleError, RuntimeError) as exc:
                skip(candidate, exc)
        runnable = [(c, run) for c, run in runnable if c.label not in failed]
        for candidate, run in runnable:
            values = times[candidate.label]
            name = candidate.label if candidate.label.startswith("baseline:") else getattr(run, "name", candidate.label)
            peak = peaks[candidate.label]
            rows.append({"engine": name, "h": h, "w": w, "precision": candidate.precision,
                         "ms_median": round(statistics.median(values), 4), "ms_p90": round(p90(values), 4),
                         "peak_mb": peak.peak_mb, "peak_growth_mb": peak.growth_mb})
            memory = f", peak {peak.peak_mb:.0f} MiB (+{peak.growth_mb:.0f})" if peak.peak_mb is not None else ""
            say(f"{name:<44} {h}x{w} {candidate.precision}: median {rows[-1]['ms_median']:.2f} ms{memory}")
    meta = {"torch": torch.__version__, "batch": batch, "iters": iters, "warmup": warmup, "cpu_caps": cpu_caps(),
            "load_average_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
            "model": type(model).__name__, "arch": getattr(getattr(model, "config", None), "to_dict", dict)(),
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    return {"device": device_label(dev), "rows": rows, "skipped": skipped, "meta": meta}


def benchmark_markdown(result: dict, *, title: str = "Engine latency") -> str:
    """The result as a Markdown table (ms median / p90), with the ratio to the fastest baseline per size."""
    lines = [f"# {title}", "", f"Device: {result['device']}  ", f"Meta: `{json.dumps(result.get('meta', {}))}`", "",
             "| engine | input | precision | median ms | p90 ms | vs best baseline | peak MiB (growth) |",
             "|---|---|---|---|---|---|---|"]
    for row in result["rows"]:
        baselines = [r["ms_median"] for r in result["rows"]
                     if r["engine"].startswith("baseline:") and (r["h"], r["w"]) == (row["h"], row["w"])]
        ratio = f"{min(baselines) / row['ms_median']:.2f}×" if baselines and row["ms_median"] > 0 else "–"
        peak = row.get("peak_mb")
        memory = f"{peak:.0f} (+{row.get('peak_growth_mb') or 0:.0f})" if peak is not None else "–"
        lines.append(f"| {row['engine']} | {row['h']}×{row['w']} | {row['precision']} | {row['ms_median']:.2f} | "
                     f"{row['ms_p90']:.2f} | {ratio} | {memory} |")
    for item in result.get("skipped", []):
        lines.append(f"\nSkipped {item['engine']}: {item['reason']}")
    return "\n".join(lines) + "\n"


def write_benchmark(result: dict, folder: str | os.PathLike, *, stem: str | None = None,
                    title: str = "Engine latency") -> tuple[Path, Path]:
    """Write ``<stem>.json`` and ``<stem>.md`` (default stem ``engines-<device slug>``); returns both paths."""
    stem = stem or f"engines-{device_slug(result['device'])}"
    json_path, md_path = write_json_and_markdown(folder, stem, result, benchmark_markdown(result, title=title))
    return json_path, md_path
