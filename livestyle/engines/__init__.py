"""Inference engines behind one interface (see base.py for the tensor layout).

Backends: ``torch`` (eager, FP16/BF16, channels_last, CUDA graphs, torch.compile, exact rewrites),
``onnx`` (ONNX Runtime: CPU, or its CUDA/TensorRT providers), ``tensorrt`` (native runtime, FP16).
``auto`` picks TensorRT, then torch on CUDA, then on the CPU torch BF16 for style nets where the
CPU has native BF16, else the faster FP32 backend for the model (measured:
bench/results/cpu-realtime/, bench/results/cpu-engines-*.md).
"""
from __future__ import annotations

import importlib.util
import os

import torch
from torch import nn

from ..errors import BackendUnavailableError, EngineOptionError
from ..models import TransformNet
from . import torch_engine
from .base import Engine, batch_to_frames, frames_to_batch
from .resolution import UPSAMPLERS, ReducedResolutionEngine
from .torch_engine import TorchEngine, resolve_device

BACKENDS = ("auto", "torch", "onnx", "tensorrt")


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


# Narrowest style net for which ONNX Runtime beat eager torch on the CPU (bench/results/cpu-engines-*.md).
ONNX_MIN_WIDTH = 8


def preferred_cpu_backend(model: nn.Module) -> str:
    """The faster CPU backend for ``model`` (measured rule): "onnx" for nets of width ≥ ONNX_MIN_WIDTH
    and for SR nets when onnxruntime is installed, else "torch".

    At 640×480 on this project's 2-core x86 CPU, ONNX Runtime took 23–29% less CPU time than eager
    torch for widths 8, 16 and 32, and 6–23% less with the sub-pixel rewrite in both; in wall clock
    on the shared machine it was 2–4× faster (bench/results/cpu-engines-conclusions.md). Narrower, test-sized nets
    gain nothing measurable and would pay a one-off export of several seconds.
    """
    config = getattr(model, "config", None)
    width = getattr(config, "width", 0)
    wide = getattr(model, "scale", 1) > 1 or width >= ONNX_MIN_WIDTH
    return "onnx" if wide and _installed("onnxruntime") else "torch"


def cpu_bf16_pays_off(model: nn.Module) -> bool:
    """Whether ``auto`` runs ``model`` in BF16 with torch on this CPU: style nets of width ≥
    ONNX_MIN_WIDTH, on CPUs with native BF16 (AVX512-BF16 or AMX).

    On this project's Xeon (with AMX) the four shipped small style models ran 1.5× faster that way
    than in ONNX Runtime FP32 at 640×480 (26–33 ms against 40–49 ms), `livestyle video` went from 16.3
    to 19–24 fps end to end, and the total perceptual loss changed by at most 0.1%
    (bench/results/cpu-realtime/cpu-realtime.md). SR nets stay in FP32: BF16 gained 13% at ×4 and
    lost 8% at ×8 against ONNX Runtime (bench/results/cpu-realtime/sr-bf16.md).
    """
    return (isinstance(model, TransformNet) and model.config.width >= ONNX_MIN_WIDTH
            and torch_engine.cpu_has_native_bf16())


def create_engine(model: nn.Module, *, backend: str = "auto", device: str | None = None, fp16: bool = False,
                  infer_scale: float = 1.0, upsample: str = "guided", compile: bool = False,
                  cache_dir: str | os.PathLike | None = None) -> Engine:
    """Build the engine for ``model``; ``auto`` picks the fastest backend present (see ``engine.name``).

    ``fp16``: half precision: FP16 on CUDA; on the CPU, BF16 with the torch backend (CPUs with
    AVX512-BF16 or AMX only; not exact: bench/results/cpu-realtime/ has its loss and speed).

    ``infer_scale`` < 1 (style models only): infer at that fraction of the input size, then upsample
    with ``upsample`` ("guided": edge-aware, or "bicubic"); not exact, a speed option for slow CPUs.
    ``compile``: run the torch backend under torch.compile (one compile per frame size, cached on disk
    in ``cache_dir``); with ``auto`` it takes the torch backend at the precision ``auto`` would use.
    ``cache_dir``: where ONNX exports, TensorRT engines and compiled code are cached (default:
    export.default_cache_dir()).
    """
    if backend not in BACKENDS:
        raise BackendUnavailableError(f"unknown backend {backend!r}; known: {', '.join(BACKENDS)}")
    dev = resolve_device(device)
    if compile:
        if backend not in ("auto", "torch"):
            raise EngineOptionError(f"compiling is for the torch backend, not {backend!r}")
        half = fp16 or (dev.type == "cpu" and cpu_bf16_pays_off(model))
        precision = ("bf16" if dev.type == "cpu" else "fp16") if half else "fp32"
        engine = TorchEngine(model, device=dev, precision=precision, compile=True, cache_dir=cache_dir)
    else:
        engine = _create_base_engine(model, backend=backend, device=dev, fp16=fp16, cache_dir=cache_dir)
    if infer_scale != 1.0:
        engine = ReducedResolutionEngine(engine, infer_scale=infer_scale, upsample=upsample)
    return engine


def _create_base_engine(model: nn.Module, *, backend: str, device: torch.device, fp16: bool,
                        cache_dir: str | os.PathLike | None) -> Engine:
    if backend == "auto":
        if device.type == "cuda":
            if _installed("tensorrt"):
                from .tensorrt_engine import TensorRTEngine

                # FP16 is TensorRT's point; its FP16 graph keeps instance norms in FP32.
                return TensorRTEngine(model, device=device, fp16=True, cache_dir=cache_dir)
            return TorchEngine(model, device=device, fp16=fp16)
        if fp16 or cpu_bf16_pays_off(model):  # the CPU's half precision is BF16, which torch runs
            return TorchEngine(model, device=device, precision="bf16")
        backend = preferred_cpu_backend(model)
    if backend == "torch":
        half = "bf16" if device.type == "cpu" else "fp16"
        return TorchEngine(model, device=device, precision=half if fp16 else "fp32")
    if backend == "onnx":
        from .onnx_engine import OnnxRuntimeEngine

        return OnnxRuntimeEngine(model, device=device, fp16=fp16, cache_dir=cache_dir)
    from .tensorrt_engine import TensorRTEngine

    return TensorRTEngine(model, device=device, fp16=fp16, cache_dir=cache_dir)


__all__ = ["BACKENDS", "Engine", "ReducedResolutionEngine", "TorchEngine", "UPSAMPLERS", "batch_to_frames",
           "cpu_bf16_pays_off", "create_engine", "frames_to_batch", "preferred_cpu_backend", "resolve_device"]
