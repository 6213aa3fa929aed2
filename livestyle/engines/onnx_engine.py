"""ONNX Runtime backend: the cached ONNX export of a network, on the CPU or through the CUDA /
TensorRT execution providers when the installed onnxruntime has them."""
from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from livestyle.errors import BackendUnavailableError
from livestyle.engines.export.onnx import (INPUT_NAME, OUTPUT_NAME, cached_onnx, default_cache_dir, model_scale,
    writable_cache_dir)
from livestyle.engines.torch_engine import resolve_device

GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")


def import_onnxruntime():
    """The ``onnxruntime`` module, or a BackendUnavailableError naming what to install."""
    try:
        import onnxruntime
    except ImportError:
        raise BackendUnavailableError("onnxruntime is not installed (pip install onnxruntime, "
                                      "or onnxruntime-gpu for CUDA)") from None
    return onnxruntime


def session_options(ort, *, threads: int | None = None, spinning: bool = False):
    """All graph optimisations, one intra-op thread per core (ONNX Runtime's own default). Spinning
    worker threads are off by default: between frames they would steal the CPU from capture and display.
    No CPU memory arena: it grows by doubling and kept twice the memory of an SR frame, for no speed
    (bench/README.md links the measurement)."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.enable_cpu_mem_arena = False
    options.intra_op_num_threads = threads or (os.cpu_count() or 1)
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    return options


class OnnxRuntimeEngine:
    """Runs a network's ONNX export with ONNX Runtime.

    ``precision``: "fp32", or "fp16" (CUDA only: the FP16 graph, instance norms in FP32). ``rewrite``:
    export with the exact sub-pixel upsample rewrite; default on for the CPU provider, off on GPUs;
    the name says "-plain" for a CPU engine without it. ``onnx_path``: use this file
    instead of the cached export. ``threads``: intra-op threads (default one per core; the name then
    ends in "-tN"). ``progress``: told about an ONNX export (``cached_onnx``).
    Input/output: float32 (N, 3, H, W) in [0, 1]; output on the engine's device (CPU for the CPU provider).
    """

    def __init__(self, model: nn.Module, *, device: torch.device | str | None = None, precision: str = "fp32",
                 rewrite: bool | None = None, cache_dir: str | os.PathLike | None = None,
                 onnx_path: str | os.PathLike | None = None, threads: int | None = None, spinning: bool = False,
                 progress: Callable[[str], None] | None = None):
        ort = import_onnxruntime()
        self.device = resolve_device(device)
        if precision not in ("fp32", "fp16"):
            raise BackendUnavailableError(f"ONNX Runtime runs FP32 or FP16 graphs, not {precision!r}")
        self.scale = model_scale(model)
        default_rewrite = self.device.type == "cpu"
        rewrite = default_rewrite if rewrite is None else rewrite
        available = ort.get_available_providers()
        if self.device.type == "cuda":
            gpu = [p for p in GPU_PROVIDERS if p in available]
            if not gpu:
                raise BackendUnavailableError("this onnxruntime has no CUDA provider (pip install onnxruntime-gpu); "
                                              "use --backend torch on the GPU")
            folder = writable_cache_dir(Path(cache_dir) if cache_dir else default_cache_dir())
            trt_options = {"device_id": self.device.index or 0, "trt_fp16_enable": precision == "fp16",
                           "trt_engine_cache_enable": True, "trt_engine_cache_path": str(folder),
                           "trt_timing_cache_enable": True}
            providers = [(p, trt_options if p == "TensorrtExecutionProvider" else {"device_id": self.device.index or 0})
                         for p in gpu] + ["CPUExecutionProvider"]
        else:
            if precision != "fp32":
                raise BackendUnavailableError("ONNX Runtime runs FP16 on CUDA only; on the CPU, --fp16 means BF16 "
                                              "with the torch backend (--backend torch or auto)")
            providers = ["CPUExecutionProvider"]
        path = Path(onnx_path) if onnx_path else cached_onnx(model, cache_dir=cache_dir, precision=precision,
                                                             rewrite=rewrite, progress=progress)
        self.session = ort.InferenceSession(str(path), sess_options=session_options(ort, threads=threads, spinning=spinning),
                                            providers=providers)
        used = self.session.get_providers()[0]
        short = {"TensorrtExecutionProvider": "trt", "CUDAExecutionProvider": "cuda"}.get(used, "cpu")
        self.provider = used
        variant = "" if rewrite == default_rewrite else ("-rewrites" if rewrite else "-plain")
        self.name = f"onnxruntime-{short}-{precision}{variant}" + (f"-t{threads}" if threads else "")

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        if self.device.type == "cuda":
            return self._run_on_device(batch)
        x = np.ascontiguousarray(batch.detach().to("cpu", torch.float32).numpy())
        (out,) = self.session.run([OUTPUT_NAME], {INPUT_NAME: x})
        return torch.from_numpy(out)

    def _run_on_device(self, batch: torch.Tensor) -> torch.Tensor:
        """CUDA: bind torch tensors' device memory directly (no host round trip)."""
        x = batch.detach().to(self.device, torch.float32).contiguous()
        n, c, h, w = x.shape
        out = torch.empty((n, c, h * self.scale, w * self.scale), device=self.device, dtype=torch.float32)
        index = self.device.index or 0
        binding = self.session.io_binding()
        binding.bind_input(INPUT_NAME, "cuda", index, np.float32, tuple(x.shape), x.data_ptr())
        binding.bind_output(OUTPUT_NAME, "cuda", index, np.float32, tuple(out.shape), out.data_ptr())
        torch.cuda.current_stream(self.device).synchronize()  # ORT runs on its own stream
        self.session.run_with_iobinding(binding)
        return out
