"""The one place that turns a chosen model into an engine, with ``auto`` backend and precision.

``auto`` takes TensorRT (FP16) where it is installed on a GPU, then torch on CUDA; on the CPU it
times the CPU engines (torch, ONNX Runtime, OpenVINO; FP32, and BF16 where the CPU has it; thread
counts) on the first frame of a size class and keeps the fastest (``cpu_choice``, cached per CPU).
``build_engine`` also bounds a frame's memory: where the activations of one frame would pass the
memory budget, the network runs in tiles (``memory``, ``tiling``). The measurements behind these
rules are indexed in bench/README.md.
"""
from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable

import torch
from torch import nn

from livestyle.engines import BACKENDS, PRECISIONS
from livestyle.engines.base import Engine
from livestyle.engines.chain import ChainEngine
from livestyle.engines.cpu_choice import ONNX_MIN_WIDTH, MeasuredCpuEngine
from livestyle.engines.device import cpu_has_native_bf16, resolve_device
from livestyle.engines.memory import MemoryBoundedEngine
from livestyle.engines.resolution import ReducedResolutionEngine
from livestyle.engines.torch_engine import TorchEngine
from livestyle.errors import BackendUnavailableError, EngineOptionError
from livestyle.models.transform import TransformNet
from livestyle.zoo.choice import ModelChoice
from livestyle.zoo.community import OnnxFileNet

STYLE_ONLY_OPTIONS = ("infer_scale", "upsample", "variable_scale")  # create_engine options that make no sense for SR

Progress = Callable[[str], None]


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def can_tile(model: nn.Module) -> bool:
    """Whether tiled inference knows ``model``'s receptive field (TransformNet, SRNet, pytorch/examples nets)."""
    from livestyle.engines.tiling import TilingError, tile_geometry

    try:
        tile_geometry(model)
    except TilingError:
        return False
    return True


def cpu_bf16_pays_off(model: nn.Module) -> bool:
    """Whether ``--compile`` with ``auto`` precision compiles ``model`` in BF16 on this CPU: style nets
    of width ≥ ONNX_MIN_WIDTH, on CPUs with native BF16 (the other engines are chosen by timing)."""
    return isinstance(model, TransformNet) and model.config.width >= ONNX_MIN_WIDTH and cpu_has_native_bf16()


def create_engine(model: nn.Module, *, backend: str = "auto", device: str | torch.device | None = None,
                  precision: str = "auto", infer_scale: float = 1.0, upsample: str = "guided",
                  compile: bool = False, cache_dir: str | os.PathLike | None = None,
                  progress: Progress | None = None, memory_budget: int | None = None,
                  variable_scale: bool = False, threads: int | None = None) -> Engine:
    """The engine for ``model``; ``auto`` picks the fastest backend and precision present (see ``engine.name``).

    ``precision``: "auto", "fp32", "fp16" (CUDA) or "bf16" (CUDA, or CPUs with native BF16).
    ``infer_scale`` < 1 (style models only): infer at that fraction of the input size, then upsample
    with ``upsample`` ("guided": edge-aware, or "bicubic"); not exact, a speed option for slow CPUs.
    ``compile``: the torch backend under torch.compile (one compile per frame size, cached on disk
    in ``cache_dir``); with ``auto`` at the precision ``auto`` would use.
    ``cache_dir``: where ONNX exports, TensorRT engines, compiled code and the CPU choices are cached.
    ``progress``: one-line messages while an engine is prepared (ONNX export, timing the CPU engines).
    On the CPU, ``auto`` returns a ``MeasuredCpuEngine``: it chooses on its first frame, or at
    ``engine.prepare(shape)``.
    ``memory_budget`` (CPU): bytes of activations one frame may take before the network runs in tiles
    (``MemoryBoundedEngine``; default: the larger of 2 GiB and a quarter of the RAM).
    ``variable_scale`` (style models): wrap in a ReducedResolutionEngine even at ``infer_scale`` 1, so
    that the scale can change while running (the frame-rate governor of live sources).
    ``threads`` (CPU, a named backend): the engine's threads, e.g. a batch worker's share of the cores
    (``auto`` times its own thread counts).
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
        engine = _backend_engine(model, backend=backend, device=dev, precision=precision, cache_dir=cache_dir,
                                 progress=progress, measure_new_sizes=not variable_scale,
                                 threads=threads if dev.type == "cpu" else None)
    if dev.type == "cpu" and can_tile(model):
        engine = MemoryBoundedEngine(engine, model, budget=memory_budget)
    if infer_scale != 1.0 or variable_scale:
        engine = ReducedResolutionEngine(engine, infer_scale=infer_scale, upsample=upsample)
    return engine


def _backend_engine(model: nn.Module, *, backend: str, device: torch.device, precision: str,
                    cache_dir: str | os.PathLike | None, progress: Progress | None,
                    measure_new_sizes: bool = True, threads: int | None = None) -> Engine:
    if backend == "auto":
        if device.type == "cuda":
            if _installed("tensorrt") and precision in ("auto", "fp16"):
                from livestyle.engines.tensorrt_engine import TensorRTEngine

                # FP16 is TensorRT's point; its FP16 graph keeps instance norms in FP32.
                return TensorRTEngine(model, device=device, precision="fp16", cache_dir=cache_dir)
            return TorchEngine(model, device=device, precision="fp32" if precision == "auto" else precision)
        if precision == "fp16":
            raise BackendUnavailableError("FP16 needs a CUDA device; on the CPU half precision is BF16")
        return MeasuredCpuEngine(model, precision=precision, cache_dir=cache_dir, progress=progress,
                                 measure_new_sizes=measure_new_sizes)
    precision = "fp32" if precision == "auto" else precision
    if backend == "torch":
        return TorchEngine(model, device=device, precision=precision, threads=threads)
    if backend == "onnx":
        from livestyle.engines.onnx_engine import OnnxRuntimeEngine

        return OnnxRuntimeEngine(model, device=device, precision=precision, cache_dir=cache_dir, progress=progress,
                                 threads=threads)
    if backend == "openvino":
        from livestyle.engines.openvino_engine import OpenVinoEngine

        return OpenVinoEngine(model, device=device, precision=precision, cache_dir=cache_dir, progress=progress,
                              threads=threads)
    from livestyle.engines.tensorrt_engine import TensorRTEngine

    return TensorRTEngine(model, device=device, precision=precision, cache_dir=cache_dir)


def build_engine(choice: ModelChoice, *, backend: str = "auto", device: str | None = None, precision: str = "auto",
                 tile: int | None = None, **engine_options) -> Engine:
    """The engine for a ``choose_model`` result: a chain for style + SR, tiled if ``tile`` is given.

    ``tile``: run each network in tiles of ``tile`` input pixels (TiledEngine, torch backend, exact
    whole-frame instance-norm statistics); without it, CPU engines tile where a frame would pass
    ``memory_budget``. ``engine_options`` go to ``create_engine`` (``infer_scale``, ``upsample`` and
    ``variable_scale`` to the style stage only); community ONNX files always run through ONNX Runtime
    on the CPU, inside a TorchEngine shell. The engine has ``prepare(shape)`` where a stage chooses its
    engine on its first frame (CPU ``auto``): call it to choose before the frames flow.
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
