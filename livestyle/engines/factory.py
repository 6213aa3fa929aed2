"""The one place that turns a chosen model into an engine, with ``auto`` backend and precision.

``auto`` takes TensorRT (FP16) where it is installed on a GPU, then torch on CUDA; on the CPU,
torch in BF16 for style nets where the CPU has native BF16, else the faster FP32 backend for the
model (ONNX Runtime for nets of width ≥ 8 and SR nets). The measurements behind these rules are
indexed in bench/README.md.
"""
from __future__ import annotations

import importlib.util
import os

import torch
from torch import nn

from livestyle.engines import BACKENDS, PRECISIONS
from livestyle.engines.base import Engine
from livestyle.engines.chain import ChainEngine
from livestyle.engines.device import cpu_has_native_bf16, resolve_device
from livestyle.engines.resolution import ReducedResolutionEngine
from livestyle.engines.torch_engine import TorchEngine
from livestyle.errors import BackendUnavailableError, EngineOptionError
from livestyle.models.transform import TransformNet
from livestyle.zoo.choice import ModelChoice
from livestyle.zoo.community import OnnxFileNet

ONNX_MIN_WIDTH = 8  # the narrowest style net for which ONNX Runtime beat eager torch on the CPU
STYLE_ONLY_OPTIONS = ("infer_scale", "upsample")  # create_engine options that make no sense for SR


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def preferred_cpu_backend(model: nn.Module) -> str:
    """The faster FP32 CPU backend for ``model``: "onnx" for style nets of width ≥ ONNX_MIN_WIDTH and
    for SR nets (where onnxruntime is installed), else "torch" (tiny nets gain nothing from an export)."""
    width = getattr(getattr(model, "config", None), "width", 0)
    wide = getattr(model, "scale", 1) > 1 or width >= ONNX_MIN_WIDTH
    return "onnx" if wide and _installed("onnxruntime") else "torch"


def cpu_bf16_pays_off(model: nn.Module) -> bool:
    """Whether ``auto`` runs ``model`` in BF16 on this CPU: style nets of width ≥ ONNX_MIN_WIDTH, on CPUs
    with native BF16. SR nets stay in FP32 (BF16 was no faster for them)."""
    return isinstance(model, TransformNet) and model.config.width >= ONNX_MIN_WIDTH and cpu_has_native_bf16()


def create_engine(model: nn.Module, *, backend: str = "auto", device: str | torch.device | None = None,
                  precision: str = "auto", infer_scale: float = 1.0, upsample: str = "guided",
                  compile: bool = False, cache_dir: str | os.PathLike | None = None) -> Engine:
    """The engine for ``model``; ``auto`` picks the fastest backend and precision present (see ``engine.name``).

    ``precision``: "auto", "fp32", "fp16" (CUDA) or "bf16" (CUDA, or CPUs with native BF16).
    ``infer_scale`` < 1 (style models only): infer at that fraction of the input size, then upsample
    with ``upsample`` ("guided": edge-aware, or "bicubic"); not exact, a speed option for slow CPUs.
    ``compile``: the torch backend under torch.compile (one compile per frame size, cached on disk
    in ``cache_dir``); with ``auto`` at the precision ``auto`` would use.
    ``cache_dir``: where ONNX exports, TensorRT engines and compiled code are cached.
    """
    if backend not in BACKENDS:
        raise BackendUnavailableError(f"unknown backend {backend!r}; known: {', '.join(BACKENDS)}")
    if precision not in PRECISIONS:
        raise BackendUnavailableError(f"unknown precision {precision!r}; known: {', '.join(PRECISIONS)}")
    dev = resolve_device(device)
    if compile:
        if backend not in ("auto", "torch"):
            raise EngineOptionError(f"compiling is for the torch backend, not {backend!r}")
        if precision == "auto":
            precision = "bf16" if dev.type == "cpu" and cpu_bf16_pays_off(model) else "fp32"
        engine = TorchEngine(model, device=dev, precision=precision, compile=True, cache_dir=cache_dir)
    else:
        engine = _backend_engine(model, backend=backend, device=dev, precision=precision, cache_dir=cache_dir)
    if infer_scale != 1.0:
        engine = ReducedResolutionEngine(engine, infer_scale=infer_scale, upsample=upsample)
    return engine


def _backend_engine(model: nn.Module, *, backend: str, device: torch.device, precision: str,
                    cache_dir: str | os.PathLike | None) -> Engine:
    if backend == "auto":
        if device.type == "cuda":
            if _installed("tensorrt") and precision in ("auto", "fp16"):
                from livestyle.engines.tensorrt_engine import TensorRTEngine

                # FP16 is TensorRT's point; its FP16 graph keeps instance norms in FP32.
                return TensorRTEngine(model, device=device, precision="fp16", cache_dir=cache_dir)
            return TorchEngine(model, device=device, precision="fp32" if precision == "auto" else precision)
        if precision == "auto":
            precision = "bf16" if cpu_bf16_pays_off(model) else "fp32"
        if precision != "fp32":  # the CPU's half precision is BF16, which torch runs
            return TorchEngine(model, device=device, precision=precision)
        backend = preferred_cpu_backend(model)
    precision = "fp32" if precision == "auto" else precision
    if backend == "torch":
        return TorchEngine(model, device=device, precision=precision)
    if backend == "onnx":
        from livestyle.engines.onnx_engine import OnnxRuntimeEngine

        return OnnxRuntimeEngine(model, device=device, precision=precision, cache_dir=cache_dir)
    from livestyle.engines.tensorrt_engine import TensorRTEngine

    return TensorRTEngine(model, device=device, precision=precision, cache_dir=cache_dir)


def build_engine(choice: ModelChoice, *, backend: str = "auto", device: str | None = None, precision: str = "auto",
                 tile: int | None = None, **engine_options) -> Engine:
    """The engine for a ``choose_model`` result: a chain for style + SR, tiled if ``tile`` is given.

    ``tile``: run each network in tiles of ``tile`` input pixels (TiledEngine, torch backend, exact
    whole-frame instance-norm statistics). ``engine_options`` go to ``create_engine`` (``infer_scale``
    and ``upsample`` to the style stage only); community ONNX files always run through ONNX Runtime
    on the CPU, inside a TorchEngine shell.
    """
    def one(model, options: dict) -> Engine:
        if isinstance(model, OnnxFileNet):
            if tile:
                raise BackendUnavailableError("--tile needs a PyTorch model; an ONNX file cannot be tiled")
            if options.get("compile"):
                raise BackendUnavailableError("--compile needs a PyTorch model; an ONNX file runs in ONNX Runtime")
            engine = TorchEngine(model, device=torch.device("cpu"))  # onnxruntime runs it on the CPU
            engine.name = "onnxruntime-cpu-fp32"  # what runs, not the shell around it
            return engine
        if tile:
            if backend not in ("auto", "torch"):
                raise BackendUnavailableError(f"--tile runs on the torch backend, not {backend!r}")
            if options.get("compile"):
                raise BackendUnavailableError("--tile runs the network eagerly; leave out --compile")
            if options.get("infer_scale", 1.0) != 1.0:
                raise BackendUnavailableError("--tile runs the network at the frame's own size; leave out --infer-scale")
            from livestyle.engines.tiling import TiledEngine

            return TiledEngine(model, tile=tile, device=device, precision="fp32" if precision == "auto" else precision)
        return create_engine(model, backend=backend, device=device, precision=precision, **options)

    engine = one(choice.model, engine_options)
    if choice.superres_model is not None:
        sr_options = {k: v for k, v in engine_options.items() if k not in STYLE_ONLY_OPTIONS}
        engine = ChainEngine(engine, one(choice.superres_model, sr_options))
    return engine
